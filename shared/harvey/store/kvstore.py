"""Redis, shared by the retrieval cache, the breakers' shared state and the rate limits.

Redis is optional: without REDIS_URL, or while it fails, `client()` is None and every user falls back
(cache off, per-process breakers and limits). Every use goes through the "redis" breaker: one failure
(a 0.5 s timeout when Redis hangs) opens it, and then Redis is not asked again until one probe after
HARVEY_BREAKER_OPEN_S, so a hung Redis costs one timeout per cool-down instead of two per request.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from harvey.config import get_settings
from harvey.store.breaker import Breaker

log = logging.getLogger("harvey.store.kvstore")
_lock = threading.Lock()
_client: Any = None
_announced = False
# Per process (it guards the shared store itself); threshold 1: Redis is optional, a timeout is not.
BREAKER = Breaker("redis", threshold=1, shared=False)


def client():
    """The Redis client; None without REDIS_URL (said once in the log) or while Redis is failing.

    A caller that gets a client reports the outcome with `succeeded()` / `failed()`."""
    global _client, _announced
    url = get_settings().redis_url
    if not url:
        if not _announced:
            log.info("REDIS_URL not set: retrieval cache, shared breakers and shared rate limits are off")
            _announced = True
        return None
    if not BREAKER.allow():
        return None
    with _lock:
        if _client is None:
            import redis

            _client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        return _client


def reset() -> None:
    global _client
    with _lock:
        _client = None
    BREAKER.reset()


def succeeded() -> None:
    BREAKER.success()


def failed(what: str, exc: Exception) -> None:
    BREAKER.failure()
    log.warning("redis %s failed", what, extra={"error": str(exc)})
