"""Optional Redis cache for retrieval results.

Keys hold the tenant, the index version and the tenant's ingest generation, so a new
ingest or a purge makes old entries unreachable (they expire on their TTL). Without
REDIS_URL, or when Redis is down, the cache is simply off: it never fails a request.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from harvey import metrics
from harvey.config import get_settings
from harvey.store import kvstore


def _generation(r, tenant_id: str) -> int:
    return int(r.get(f"harvey:gen:{tenant_id}") or 0)


def bump_generation(tenant_id: str) -> None:
    """Invalidate the tenant's cached retrievals (after ingest or purge)."""
    r = kvstore.client()
    if r is None:
        return
    try:
        r.incr(f"harvey:gen:{tenant_id}")
    except Exception as exc:  # noqa: BLE001
        kvstore.failed("cache invalidation", exc)
        return
    kvstore.succeeded()


def _key(r, tenant_id: str, index_version: str, query: str, top_k: int) -> str:
    digest = hashlib.sha256(f"{top_k}\x00{query}".encode()).hexdigest()
    return f"harvey:retrieval:{tenant_id}:{index_version}:{_generation(r, tenant_id)}:{digest}"


def get(tenant_id: str, index_version: str, query: str, top_k: int) -> list[dict[str, Any]] | None:
    r = kvstore.client()
    if r is None:
        return None
    try:
        raw = r.get(_key(r, tenant_id, index_version, query, top_k))
    except Exception as exc:  # noqa: BLE001
        metrics.CACHE_LOOKUPS.labels(outcome="error").inc()
        kvstore.failed("cache read", exc)
        return None
    kvstore.succeeded()
    metrics.CACHE_LOOKUPS.labels(outcome="hit" if raw else "miss").inc()
    return json.loads(raw) if raw else None


def put(tenant_id: str, index_version: str, query: str, top_k: int, value: list[dict[str, Any]]) -> None:
    r = kvstore.client()
    if r is None:
        return
    try:
        r.set(
            _key(r, tenant_id, index_version, query, top_k),
            json.dumps(value, ensure_ascii=False),
            ex=get_settings().cache_ttl_s,
        )
    except Exception as exc:  # noqa: BLE001
        kvstore.failed("cache write", exc)
        return
    kvstore.succeeded()
