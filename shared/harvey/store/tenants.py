"""Tenants, their API keys, per-tenant feature flags and limits (requests per minute, monthly budget).

API keys are random 256-bit secrets shown once; only their SHA-256 is stored (a
slow hash buys nothing for keys with that much entropy, and lookups stay O(1)).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass

from harvey.config import get_settings
from harvey.store import db

KEY_PREFIX = "hv_"
# Tenants this process looked up recently, by verified key ("key:" + SHA-256) or by id ("id:" + uuid) →
# (monotonic expiry, tenant). Bounded; only known keys and ids are kept.
_RECENT_MAX = 4096
_recent: dict[str, tuple[float, Tenant]] = {}
_recent_lock = threading.Lock()


class TenantExists(Exception):
    pass


class UnknownTenant(Exception):
    pass


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    logs_only: bool = False
    force_fallback: bool = False
    requests_per_minute: int | None = None  # None: unlimited (enforced by harvey.store.limits)
    monthly_budget_usd: float | None = None

    @property
    def flags(self) -> dict[str, bool]:
        return {"logs_only": self.logs_only, "force_fallback": self.force_fallback}


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def _new_key(tenant_id: str) -> str:
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    db.query(
        "INSERT INTO api_keys (id, tenant_id, key_hash, key_prefix) VALUES (:id, :tenant, :hash, :prefix)",
        id=str(uuid.uuid4()),
        tenant=tenant_id,
        hash=hash_key(api_key),
        prefix=api_key[:10],
    )
    return api_key


def _from_row(row: dict) -> Tenant:
    return Tenant(
        str(row["id"]),
        row["name"],
        row["logs_only"],
        row["force_fallback"],
        row.get("requests_per_minute"),
        row.get("monthly_budget_usd"),
    )


def create(name: str) -> tuple[Tenant, str]:
    """Create a tenant and its first API key; the key is returned once and never stored."""
    name = name.strip()
    if not name:
        raise ValueError("tenant name must not be empty")
    tenant_id = str(uuid.uuid4())
    with db.transaction():
        row = db.one(
            "INSERT INTO tenants (id, name) VALUES (:id, :name) ON CONFLICT (name) DO NOTHING RETURNING *",
            id=tenant_id,
            name=name,
        )
        if row is None:
            raise TenantExists(f"tenant {name!r} already exists")
        api_key = _new_key(tenant_id)
    return _from_row(row), api_key


def rotate_key(name: str) -> str:
    """Revoke every key of the tenant and issue a new one."""
    tenant = by_name(name)
    with db.transaction():
        db.query(
            "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = :tenant AND revoked_at IS NULL",
            tenant=tenant.id,
        )
        api_key = _new_key(tenant.id)
    forget_recent()
    return api_key


def by_name(name: str) -> Tenant:
    row = db.one("SELECT * FROM tenants WHERE name = :name", name=name)
    if row is None:
        raise UnknownTenant(f"no tenant named {name!r}")
    return _from_row(row)


def by_id(tenant_id: str) -> Tenant:
    if not db.is_uuid(tenant_id):
        raise UnknownTenant(f"no tenant with id {tenant_id}")
    row = db.one("SELECT * FROM tenants WHERE id = CAST(:id AS uuid)", id=tenant_id)
    if row is None:
        raise UnknownTenant(f"no tenant with id {tenant_id}")
    return _from_row(row)


def recent_by_id(tenant_id: str) -> Tenant:
    """`by_id`, trusted for HARVEY_API_KEY_CACHE_S in this process as a verified key is: event deliveries and
    review links name their tenant on every request. A flag or limit change made by another process applies
    here within that TTL; a tenant's data, once purged, is gone whatever this process remembers."""
    cached = _recall(f"id:{tenant_id}")
    if cached is not None:
        return cached
    tenant = by_id(tenant_id)
    _remember(f"id:{tenant_id}", tenant)
    return tenant


def authenticate(api_key: str) -> Tenant | None:
    """The tenant owning an active key.

    A verified key is trusted for HARVEY_API_KEY_CACHE_S in this process (a round trip saved per request):
    a revocation, flag or limit change made by another process applies here within that TTL.
    """
    if not api_key.startswith(KEY_PREFIX):
        return None
    entry = f"key:{hash_key(api_key)}"
    cached = _recall(entry)
    if cached is not None:
        return cached
    row = db.one(
        "SELECT t.* FROM api_keys k JOIN tenants t ON t.id = k.tenant_id "
        "WHERE k.key_hash = :hash AND k.revoked_at IS NULL",
        hash=entry.removeprefix("key:"),
    )
    tenant = _from_row(row) if row else None
    _remember(entry, tenant)
    return tenant


def _recall(entry: str) -> Tenant | None:
    with _recent_lock:
        cached = _recent.get(entry)
    return cached[1] if cached is not None and cached[0] > time.monotonic() else None


def _remember(entry: str, tenant: Tenant | None) -> None:
    ttl = get_settings().api_key_cache_s
    with _recent_lock:
        if tenant is None or ttl <= 0:
            _recent.pop(entry, None)
            return
        if len(_recent) >= _RECENT_MAX:
            _recent.clear()
        _recent[entry] = (time.monotonic() + ttl, tenant)


def forget_recent() -> None:
    """Drop this process's recent lookups: the next request of every tenant is looked up again."""
    with _recent_lock:
        _recent.clear()


def set_flags(name: str, *, logs_only: bool | None = None, force_fallback: bool | None = None) -> Tenant:
    tenant = by_name(name)
    row = db.one(
        "UPDATE tenants SET logs_only = COALESCE(:logs_only, logs_only), "
        "force_fallback = COALESCE(:force_fallback, force_fallback) WHERE id = :id RETURNING *",
        logs_only=logs_only,
        force_fallback=force_fallback,
        id=tenant.id,
    )
    assert row is not None
    forget_recent()
    return _from_row(row)


def set_limits(
    name: str,
    *,
    requests_per_minute: int | None = None,
    monthly_budget_usd: float | None = None,
    clear_rpm: bool = False,
    clear_budget: bool = False,
) -> Tenant:
    """Change NAME's limits; None leaves a limit as it is, `clear_*` removes it (unlimited)."""
    if requests_per_minute is not None and requests_per_minute <= 0:
        raise ValueError("requests per minute must be positive (use --clear to remove the limit)")
    if monthly_budget_usd is not None and monthly_budget_usd <= 0:
        raise ValueError("the monthly budget must be positive (use --clear to remove it)")
    tenant = by_name(name)
    row = db.one(
        "UPDATE tenants SET "
        "requests_per_minute = CASE WHEN :clear_rpm THEN NULL "
        "ELSE COALESCE(CAST(:rpm AS integer), requests_per_minute) END, "
        "monthly_budget_usd = CASE WHEN :clear_budget THEN NULL "
        "ELSE COALESCE(CAST(:budget AS double precision), monthly_budget_usd) END "
        "WHERE id = :id RETURNING *",
        rpm=requests_per_minute,
        budget=monthly_budget_usd,
        clear_rpm=clear_rpm,
        clear_budget=clear_budget,
        id=tenant.id,
    )
    assert row is not None
    forget_recent()
    return _from_row(row)


def all_ids() -> list[str]:
    """Every tenant's id, oldest first: what scheduled maintenance sweeps."""
    return [str(r["id"]) for r in db.query("SELECT id FROM tenants ORDER BY created_at, id")]
