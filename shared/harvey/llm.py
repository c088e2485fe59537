"""Model access, only through litellm, with a fallback chain.

Models are tried in order (HARVEY_LLM_MODELS); a timeout, a 5xx or any provider error
moves on to the next one. Before a prompt leaves for an external provider its
personal data is pseudonymised, and the tokens are restored in the answer.

Each remote model has a circuit breaker (`harvey.breaker`), and one request's calls share a
`Budget`, so a dead primary costs one timeout per breaker cool-down, not one per draft and revision.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from harvey import breaker, metrics
from harvey.config import get_settings

log = logging.getLogger("harvey.llm")
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


def load() -> None:
    """Import litellm (≈3 s) and register the offline provider; safe to call from a warm-up thread."""
    global _registered
    with _ready:
        if _registered:
            return
        # Never reach for the remote price list: the cluster egress allows only LLM endpoints.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        from harvey import extractive

        litellm.suppress_debug_info = True
        litellm.telemetry = False
        extractive.register()
        _registered = True


def is_local(model: str) -> bool:
    return model.startswith(LOCAL_PREFIX)


def complete(messages: list[dict[str, str]], chain: list[str], budget: Budget | None = None) -> Completion:
    """The first model in `chain` that answers; raises AllModelsFailed when none does.

    Pass one `Budget` to every call of a request: a model that failed once is not asked again, and
    remote calls stop at its deadline. A model whose breaker is open is skipped at once. The local
    model is always tried: it runs in-process and cannot hang on a network.
    """
    load()
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
            response, text = _call(model, outgoing, budget, settings)
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
                raise ValueError("empty answer")
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
    """Counts against the breaker: timeouts, connection errors, 5xx, 429, empty or unreadable answers.

    Other 4xx (context window exceeded, content filter, bad key) are fast and say the provider is up;
    they are about this request or this deployment, and must not shed the model for every tenant.
    """
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
