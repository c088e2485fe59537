"""Optional Redis cache for retrieval results.

Keys hold the tenant, the index version and the tenant's ingest generation, so a new
ingest or a purge makes old entries unreachable (they expire on their TTL). Without
REDIS_URL, or when Redis is down, the cache is simply off: it never fails a request.

The same client serves the breakers' shared state and the rate limits. Every use goes through
the "redis" breaker: one failure (a 0.5 s timeout when Redis hangs) opens it, and then Redis is
not asked again until one probe after HARVEY_BREAKER_OPEN_S, so a hung Redis costs one timeout
per cool-down instead of two per request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from typing import Any

from harvey import metrics
from harvey.breaker import Breaker
from harvey.config import get_settings

log = logging.getLogger("harvey.cache")
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
            log.info("REDIS_URL not set: retrieval cache is off")
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


def _generation(r, tenant_id: str) -> int:
    return int(r.get(f"harvey:gen:{tenant_id}") or 0)


def bump_generation(tenant_id: str) -> None:
    """Invalidate the tenant's cached retrievals (after ingest or purge)."""
    r = client()
    if r is None:
        return
    try:
        r.incr(f"harvey:gen:{tenant_id}")
    except Exception as exc:  # noqa: BLE001
        failed("cache invalidation", exc)
        return
    succeeded()


def _key(r, tenant_id: str, index_version: str, query: str, top_k: int) -> str:
    digest = hashlib.sha256(f"{top_k}\x00{query}".encode()).hexdigest()
    return f"harvey:retrieval:{tenant_id}:{index_version}:{_generation(r, tenant_id)}:{digest}"


def get(tenant_id: str, index_version: str, query: str, top_k: int) -> list[dict[str, Any]] | None:
    r = client()
    if r is None:
        return None
    try:
        raw = r.get(_key(r, tenant_id, index_version, query, top_k))
    except Exception as exc:  # noqa: BLE001
        metrics.CACHE_LOOKUPS.labels(outcome="error").inc()
        failed("cache read", exc)
        return None
    succeeded()
    metrics.CACHE_LOOKUPS.labels(outcome="hit" if raw else "miss").inc()
    return json.loads(raw) if raw else None


def put(tenant_id: str, index_version: str, query: str, top_k: int, value: list[dict[str, Any]]) -> None:
    r = client()
    if r is None:
        return
    try:
        r.set(
            _key(r, tenant_id, index_version, query, top_k),
            json.dumps(value, ensure_ascii=False),
            ex=get_settings().cache_ttl_s,
        )
    except Exception as exc:  # noqa: BLE001
        failed("cache write", exc)
        return
    succeeded()
