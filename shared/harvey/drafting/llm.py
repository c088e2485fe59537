"""Model access, only through litellm, with a fallback chain.

Models are tried in order (HARVEY_LLM_MODELS); a timeout, a 5xx or any provider error
moves on to the next one. Before a prompt leaves for an external provider its
personal data is pseudonymised, and the tokens are restored in the answer.

Each remote model has a circuit breaker (`harvey.store.breaker`), and one request's calls share a
`Budget`, so a dead primary costs one timeout per breaker cool-down, not one per draft and revision.

Importing litellm takes seconds, so a chain of offline `harvey/*` models only is called directly and
never imports it; a chain with any remote model goes through litellm for every link, fallbacks and all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from harvey import metrics
from harvey.config import get_settings
from harvey.store import breaker

log = logging.getLogger("harvey.drafting.llm")
LOCAL_PREFIX = "harvey/"
_ready = threading.Lock()
_registered = False


# Below this much time left in a request's budget a remote model is not worth starting.
MIN_CALL_S = 0.5


@dataclass
class Budget:
    """One request's model budget, shared by its draft and revisions: a deadline and what already failed."""

    deadline: float
    failed: set[str] = field(default_factory=set)

    @classmethod
    def start(cls, seconds: float | None = None) -> Budget:
        """A budget of `seconds` (default HARVEY_LLM_DEADLINE_S) from now."""
        return cls(time.monotonic() + (get_settings().llm_deadline_s if seconds is None else seconds))

    def left(self) -> float:
        return self.deadline - time.monotonic()


class EmptyAnswer(ValueError):
    """The provider answered, with nothing (a content filter, or a model that stopped at once)."""


class AllModelsFailed(Exception):
    def __init__(self, attempts: list[dict[str, str]]):
        self.attempts = attempts
        tried = "; ".join(f"{a['model']}: {a['error']}" for a in attempts)
        super().__init__(f"every model in the fallback chain failed ({tried})")


@dataclass
class Completion:
    text: str
    model: str
    fallbacks_tried: list[dict[str, str]] = field(default_factory=list)
    tokens_input: int = 0
    tokens_output: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0


def needs_litellm(models: list[str]) -> bool:
    return any(not is_local(m) for m in models)


def _warm_models() -> list[str]:
    """What this process will ask: the drafting chain, and the faithfulness judge when one is set."""
    settings = get_settings()
    return settings.llm_chain + ([settings.judge_model] if settings.judge_model else [])


def load(models: list[str] | None = None) -> None:
    """Import litellm (≈3.5 s) when one of `models` (default: the configured ones) needs it, register the
    offline provider with it, and make one dummy call per remote provider so that a first completion waits
    on no lazy import (≈0.5 s more). A no-op for offline models. Safe to call from a warm-up thread.
    """
    global _registered
    models = _warm_models() if models is None else models
    if not needs_litellm(models):
        return
    with _ready:
        if _registered:
            return
        # Never reach for the remote price list: the cluster egress allows only LLM endpoints.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        from harvey.drafting import extractive

        litellm.suppress_debug_info = True
        litellm.telemetry = False
        extractive.register()
        for model in {m.split("/", 1)[0]: m for m in models if not is_local(m)}.values():
            _dummy_call(litellm, model)
        _registered = True


def _dummy_call(litellm, model: str) -> None:
    """Two completions that never leave the machine: one against a closed port on 127.0.0.1 runs the
    provider's client code up to the connect, one with a mocked answer runs the success path (response,
    logging, cost): between them, the lazy imports of a first real call."""
    messages = [{"role": "user", "content": "warm-up"}]
    with socket.socket() as closed, contextlib.suppress(Exception):  # it fails by design
        closed.bind(("127.0.0.1", 0))
        litellm.completion(
            model=model,
            messages=messages,
            api_key="warm-up",
            api_base=f"http://127.0.0.1:{closed.getsockname()[1]}/v1",
            timeout=1,
            num_retries=0,
            max_retries=0,
        )
    with contextlib.suppress(Exception):
        _cost(litellm.completion(model=model, messages=messages, mock_response="ok"), model)


def ready() -> bool:
    """True when a completion with the configured models will not wait on imports."""
    return _registered or not needs_litellm(_warm_models())


def is_local(model: str) -> bool:
    return model.startswith(LOCAL_PREFIX)


def complete(messages: list[dict[str, str]], chain: list[str], budget: Budget | None = None) -> Completion:
    """The first model in `chain` that answers; raises AllModelsFailed when none does.

    Pass one `Budget` to every call of a request: a model that failed once is not asked again, and
    remote calls stop at its deadline. A model whose breaker is open is skipped at once. The local
    model is always tried: it runs in-process and cannot hang on a network.
    """
    direct = not needs_litellm(chain)
    if not direct:
        load(chain)
    from harvey.pii import Pseudonymizer

    settings = get_settings()
    budget = budget or Budget.start()
    attempts: list[dict[str, str]] = []
    for model in chain:
        reason = _skip_reason(model, budget)
        if reason:
            metrics.LLM_FALLBACKS.labels(model=model).inc()
            attempts.append({"model": model, "error": reason})
            continue
        pseudonymizer = None if is_local(model) else Pseudonymizer()
        outgoing = messages
        if pseudonymizer is not None:
            outgoing = [{**m, "content": pseudonymizer.pseudonymize(m["content"])} for m in messages]
        started = time.perf_counter()
        try:
            response, text = _call_local(model, outgoing) if direct else _call(model, outgoing, budget, settings)
        except Exception as exc:  # noqa: BLE001 - any provider failure means: try the next model
            budget.failed.add(model)
            if not is_local(model) and _provider_unwell(exc):
                breaker.for_model(model).failure()
            elif not is_local(model):
                breaker.for_model(model).success()  # the provider answered: it is up, the request was bad
            metrics.LLM_FALLBACKS.labels(model=model).inc()
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            log.warning("model failed, falling back", extra={"model": model, "error": reason})
            attempts.append({"model": model, "error": reason})
            continue
        finally:
            metrics.LLM_DURATION.labels(model=model).observe(time.perf_counter() - started)
        if not is_local(model):
            breaker.for_model(model).success()
        if pseudonymizer is not None:
            text = pseudonymizer.restore(text)
        usage = getattr(response, "usage", None)
        return Completion(
            text=text,
            model=model,
            fallbacks_tried=attempts,
            tokens_input=int(getattr(usage, "prompt_tokens", 0) or 0),
            tokens_output=int(getattr(usage, "completion_tokens", 0) or 0),
            cost_usd=_cost(response, model),
            seconds=time.perf_counter() - started,
        )
    raise AllModelsFailed(attempts)


def _skip_reason(model: str, budget: Budget) -> str | None:
    """Why `model` is not asked in this call, or None."""
    if model in budget.failed:
        return "failed earlier in this request"
    if is_local(model):
        return None
    if budget.left() < MIN_CALL_S:
        return "request model-time budget spent (HARVEY_LLM_DEADLINE_S)"
    if not breaker.for_model(model).allow():
        return "circuit open"
    return None


@dataclass
class _Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass
class _LocalResponse:
    usage: _Usage


def _call_local(model: str, messages: list[dict[str, str]]) -> tuple[_LocalResponse, str]:
    """An offline model called in-process, with the answer and token estimate litellm's provider gives."""
    from harvey.drafting import extractive

    if model != extractive.MODEL_NAME:
        raise ValueError(f"unknown offline model {model!r}")
    text = extractive.respond(messages)
    if not text.strip():
        raise EmptyAnswer("empty answer")
    prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
    return _LocalResponse(_Usage(prompt_chars // 4, len(text) // 4)), text


def _call(model: str, messages: list[dict[str, str]], budget: Budget, settings) -> tuple[Any, str]:
    """One model, retried HARVEY_LLM_RETRIES times on quick failures (5xx, connection reset, empty answer).

    Never on a timeout: a hung provider would cost the timeout again (litellm's own num_retries stays
    0 for that reason), nor on a 429 or other 4xx (the next model is the better bet).
    """
    import litellm

    local = is_local(model)
    retries = 0 if local else max(0, settings.llm_retries)
    attempt = 0
    while True:
        kwargs: dict[str, Any] = {"timeout": settings.llm_timeout_s}
        if not local:
            kwargs.update(timeout=min(settings.llm_timeout_s, budget.left()), num_retries=0)
            if settings.llm_api_base:
                kwargs["api_base"] = settings.llm_api_base
        try:
            response = litellm.completion(model=model, messages=messages, **kwargs)
            text = response.choices[0].message.content or ""
            if not text.strip():
                raise EmptyAnswer("empty answer")
            return response, text
        except Exception as exc:
            if attempt >= retries or not _retryable(exc) or budget.left() < MIN_CALL_S:
                raise
            attempt += 1


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _is_timeout(exc: Exception) -> bool:
    import litellm

    return isinstance(exc, (litellm.Timeout, TimeoutError)) or _status(exc) == 408


def _provider_unwell(exc: Exception) -> bool:
    """Counts against the breaker: timeouts, connection errors, 5xx, 429, unreadable answers.

    Other 4xx (context window exceeded, content filter, bad key) are fast and say the provider is up;
    they are about this request or this deployment, and must not shed the model for every tenant. So is
    an empty answer: it is what a content-filtered completion looks like, and one tenant's prompts
    could otherwise open the breaker for all.
    """
    if isinstance(exc, EmptyAnswer):
        return False
    status = _status(exc)
    return status is None or status in (408, 429) or status >= 500 or _is_timeout(exc)


def _retryable(exc: Exception) -> bool:
    return _provider_unwell(exc) and not _is_timeout(exc) and _status(exc) != 429


def _cost(response, model: str) -> float:
    if is_local(model):
        return 0.0
    import litellm

    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:  # noqa: BLE001 - unknown price: report zero rather than fail the draft
        return 0.0
