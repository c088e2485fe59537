"""Model access, only through litellm, with a fallback chain.

Models are tried in order (HARVEY_LLM_MODELS); a timeout, a 5xx or any provider error
moves on to the next one. Before a prompt leaves for an external provider its
personal data is pseudonymised, and the tokens are restored in the answer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

from harvey import metrics
from harvey.config import get_settings

log = logging.getLogger("harvey.llm")
LOCAL_PREFIX = "harvey/"
_ready = threading.Lock()
_registered = False


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


def complete(messages: list[dict[str, str]], chain: list[str]) -> Completion:
    """The first model in `chain` that answers; raises AllModelsFailed when none does."""
    load()
    import litellm

    from harvey.pii import Pseudonymizer

    settings = get_settings()
    attempts: list[dict[str, str]] = []
    for model in chain:
        pseudonymizer = None if is_local(model) else Pseudonymizer()
        outgoing = messages
        if pseudonymizer is not None:
            outgoing = [{**m, "content": pseudonymizer.pseudonymize(m["content"])} for m in messages]
        kwargs: dict = {"timeout": settings.llm_timeout_s}
        if not is_local(model):
            kwargs["num_retries"] = settings.llm_retries
            if settings.llm_api_base:
                kwargs["api_base"] = settings.llm_api_base
        started = time.perf_counter()
        try:
            response = litellm.completion(model=model, messages=outgoing, **kwargs)
            text = response.choices[0].message.content or ""
            if not text.strip():
                raise ValueError("empty answer")
        except Exception as exc:  # noqa: BLE001 - any provider failure means: try the next model
            metrics.LLM_FALLBACKS.labels(model=model).inc()
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            log.warning("model failed, falling back", extra={"model": model, "error": reason})
            attempts.append({"model": model, "error": reason})
            continue
        finally:
            metrics.LLM_DURATION.labels(model=model).observe(time.perf_counter() - started)
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


def _cost(response, model: str) -> float:
    if is_local(model):
        return 0.0
    import litellm

    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:  # noqa: BLE001 - unknown price: report zero rather than fail the draft
        return 0.0
