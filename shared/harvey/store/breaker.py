"""Circuit breakers keyed by name: a dead dependency costs one timeout per cool-down, not one per call.

closed → open after `threshold` consecutive failures → after `open_s` exactly one caller probes
(half-open) → closed on its success, open again on its failure. Model breakers keep their state in
Redis (`harvey:breaker:<name>:{failures,open,probe}`, every key with a TTL) so one pod's timeouts
spare every other pod, and the probe slot is a `SET NX PX`, so one pod probes. When Redis is off or
unreachable the same state machine runs per process; a Redis error never fails the caller. The
"redis" breaker (in `kvstore`) is per process only: it is what says whether Redis can be asked.
"""

from __future__ import annotations

import logging
import threading
import time

from harvey import metrics
from harvey.config import get_settings

log = logging.getLogger("harvey.store.breaker")

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
_GAUGE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
# The consecutive-failure count outlives the open period, so an expired `open` key means half-open
# (probe first) rather than closed; after this many cool-downs without traffic the breaker forgets.
_MEMORY = 10


class Breaker:
    """One breaker. `threshold`/`open_s` default to HARVEY_BREAKER_FAILURES / HARVEY_BREAKER_OPEN_S."""

    def __init__(
        self,
        name: str,
        *,
        threshold: int | None = None,
        open_s: float | None = None,
        shared: bool = True,
        label: str | None = None,
    ):
        self.name, self.shared, self.label = name, shared, label or name
        self._threshold, self._open_s = threshold, open_s
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_until = 0.0

    @property
    def threshold(self) -> int:
        return self._threshold or get_settings().breaker_failures

    @property
    def open_s(self) -> float:
        return self._open_s or get_settings().breaker_open_s

    def _key(self, part: str) -> str:
        return f"harvey:breaker:{self.name}:{part}"

    def allow(self) -> bool:
        """May the caller go ahead? In half-open, True for the one caller that took the probe slot."""
        state = self._shared(self._allow_redis) or self._allow_local()
        metrics.BREAKER_STATE.labels(self.label).set(_GAUGE[state])
        if state == OPEN:
            metrics.BREAKER_REJECTED.labels(self.label).inc()
            return False
        if state == HALF_OPEN:
            self._transition(HALF_OPEN)
        return True

    def success(self) -> None:
        was_tripped = self._success_local()
        was_tripped = self._shared(self._success_redis) or was_tripped
        if was_tripped:
            self._transition(CLOSED)
        metrics.BREAKER_STATE.labels(self.label).set(_GAUGE[CLOSED])

    def failure(self) -> None:
        opened = self._failure_local()
        shared = self._shared(self._failure_redis)
        if shared is not None:
            opened = shared  # Redis is the truth when reachable: another pod may have opened it first
        if opened:
            self._transition(OPEN)
            log.warning("circuit opened", extra={"breaker": self.name, "open_s": self.open_s})

    def state(self) -> str:
        """The state as this process sees it locally (for tests and logs; `allow` is the decision)."""
        with self._lock:
            if self._failures < self.threshold:
                return CLOSED
            opened_at = self._opened_at or 0.0
            return OPEN if time.monotonic() < opened_at + self.open_s else HALF_OPEN

    def reset(self) -> None:
        with self._lock:
            self._failures, self._opened_at, self._probe_until = 0, None, 0.0

    def _transition(self, to: str) -> None:
        metrics.BREAKER_TRANSITIONS.labels(self.label, to).inc()
        metrics.BREAKER_STATE.labels(self.label).set(_GAUGE[to])

    # Per process -------------------------------------------------------------------------------

    def _allow_local(self) -> str:
        with self._lock:
            if self._failures < self.threshold:
                return CLOSED
            now = time.monotonic()
            if now < (self._opened_at or 0.0) + self.open_s or now < self._probe_until:
                return OPEN
            self._probe_until = now + self.open_s  # freed early by the probe's success or failure
            return HALF_OPEN

    def _success_local(self) -> bool:
        with self._lock:
            was_tripped = self._failures >= self.threshold
            self._failures, self._opened_at, self._probe_until = 0, None, 0.0
            return was_tripped

    def _failure_local(self) -> bool:
        """Count one failure; True when it (re)opened the breaker."""
        with self._lock:
            self._failures += 1
            if self._failures < self.threshold:
                return False
            now = time.monotonic()
            if self._opened_at is not None and now < self._opened_at + self.open_s:
                return False  # already open: a call that started before it opened
            self._opened_at, self._probe_until = now, 0.0
            return True

    # Shared through Redis ---------------------------------------------------------------------

    def _shared(self, operation):
        """Run `operation(redis)` when this breaker is shared and Redis is usable; None otherwise."""
        if not self.shared:
            return None
        from harvey.store import kvstore

        r = kvstore.client()
        if r is None:
            return None
        try:
            result = operation(r)
        except Exception as exc:  # noqa: BLE001 - Redis trouble must never fail a model call
            kvstore.failed("breaker state", exc)
            return None
        kvstore.succeeded()
        return result

    def _allow_redis(self, r) -> str:
        opened, failures = r.mget(self._key("open"), self._key("failures"))
        if opened:
            return OPEN
        if int(failures or 0) < self.threshold:
            return CLOSED
        if r.set(self._key("probe"), "1", nx=True, px=int(self.open_s * 1000)):
            return HALF_OPEN
        return OPEN

    def _success_redis(self, r) -> bool:
        pipe = r.pipeline(transaction=False)
        pipe.get(self._key("failures"))
        pipe.delete(self._key("failures"), self._key("open"), self._key("probe"))
        failures, _ = pipe.execute()
        return int(failures or 0) >= self.threshold

    def _failure_redis(self, r) -> bool:
        open_ms = int(self.open_s * 1000)
        pipe = r.pipeline(transaction=True)
        pipe.incr(self._key("failures"))
        pipe.pexpire(self._key("failures"), open_ms * _MEMORY)
        failures, _ = pipe.execute()
        if failures < self.threshold:
            return False
        # NX: a call that started before the breaker opened does not extend the open period;
        # after a failed probe the `open` key has expired, so the probe's failure re-opens it.
        opened = bool(r.set(self._key("open"), "1", nx=True, px=open_ms))
        if opened:
            r.delete(self._key("probe"))
        return opened


_lock = threading.Lock()
_models: dict[str, Breaker] = {}


def for_model(model: str) -> Breaker:
    """The process's breaker for `model` at HARVEY_LLM_API_BASE (another endpoint is another dependency).

    Its metrics label is the model when it is in HARVEY_LLM_MODELS, else "other": bounded either way.
    """
    settings = get_settings()
    name = f"model:{model}@{settings.llm_api_base}" if settings.llm_api_base else f"model:{model}"
    with _lock:
        breaker = _models.get(name)
        if breaker is None:
            label = model if model in settings.llm_chain else "other"
            breaker = _models[name] = Breaker(name, label=label)
        return breaker


def reset_models() -> None:
    """Forget every model breaker of this process (tests; Redis state expires on its own)."""
    with _lock:
        _models.clear()
