"""Per-tenant limits: requests per minute (a token bucket) and a monthly model budget.

The bucket holds `requests_per_minute` tokens and refills at rpm/60 per second; every authenticated
request takes one. It lives in Redis, one hash per tenant with a TTL, changed only by one Lua script
(atomic: two pods cannot both take the last token; Redis's clock, not the pods'). When Redis is off or
failing, each process keeps its own bucket: the limit loosens to per pod rather than failing requests.
The budget is the calendar month's (UTC) summed `run_audit.estimated_cost_usd` against
`monthly_budget_usd`; only generation checks it.
"""

from __future__ import annotations

import math
import os
import threading
import time
from datetime import datetime, timedelta

from harvey import metrics
from harvey.store.tenants import Tenant

# KEYS[1] bucket; ARGV[1] capacity (= rpm). Returns 0 when a token was taken, else the ms until one is due.
_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity = tonumber(ARGV[1])
local rate = capacity / 60000.0
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], 61000)
return wait
"""
_lock = threading.Lock()
_local: dict[str, tuple[float, float]] = {}  # tenant id -> (tokens, monotonic time)


class RateLimited(Exception):
    def __init__(self, retry_after_s: int, rpm: int):
        self.retry_after_s = retry_after_s
        super().__init__(f"rate limit of {rpm} requests per minute reached; retry in {retry_after_s} s")


class BudgetExhausted(Exception):
    def __init__(self, spent_usd: float, budget_usd: float, renews: datetime):
        self.spent_usd, self.budget_usd, self.renews = spent_usd, budget_usd, renews
        super().__init__(
            f"the monthly model budget of US$ {budget_usd:.2f} is spent (US$ {spent_usd:.2f} this month); "
            f"it renews on {renews:%Y-%m-%d} 00:00 UTC, or an operator can raise it (harvey tenant limits)"
        )


def _function() -> str:
    """The metrics label: the function serving this process (set by functions-framework), else the CLI."""
    return os.environ.get("FUNCTION_NAME", "cli")


def admit(tenant: Tenant) -> None:
    """Take one token from the tenant's bucket; RateLimited(retry_after_s) when it is empty."""
    rpm = tenant.requests_per_minute
    if not rpm:
        return
    wait_ms = _take_shared(tenant.id, rpm)
    if wait_ms is None:
        wait_ms = _take_local(tenant.id, rpm)
    if wait_ms > 0:
        metrics.RATE_LIMITED.labels(_function()).inc()
        raise RateLimited(max(1, math.ceil(wait_ms / 1000)), rpm)


def _take_shared(tenant_id: str, rpm: int) -> int | None:
    from harvey.store import kvstore

    r = kvstore.client()
    if r is None:
        return None
    try:
        wait_ms = int(r.register_script(_BUCKET)(keys=[f"harvey:ratelimit:{tenant_id}"], args=[rpm]))
    except Exception as exc:  # noqa: BLE001 - Redis trouble must never fail a request: fall back per process
        kvstore.failed("rate limit", exc)
        return None
    kvstore.succeeded()
    return wait_ms


def _take_local(tenant_id: str, rpm: int) -> int:
    rate = rpm / 60.0
    with _lock:
        now = time.monotonic()
        tokens, since = _local.get(tenant_id, (float(rpm), now))
        tokens = min(float(rpm), tokens + (now - since) * rate)
        wait_ms = 0 if tokens >= 1 else math.ceil((1 - tokens) / rate * 1000)
        _local[tenant_id] = (tokens - 1 if wait_ms == 0 else tokens, now)
        return wait_ms


def reset_local() -> None:
    """Forget the per-process buckets (tests)."""
    with _lock:
        _local.clear()


def check_budget(tenant: Tenant) -> None:
    """BudgetExhausted when this month's audited model cost has reached the tenant's monthly budget."""
    budget = tenant.monthly_budget_usd
    if budget is None:
        return
    from harvey.store import audit

    spent = audit.month_cost(tenant.id)
    if spent >= budget:
        metrics.BUDGET_EXHAUSTED.labels(_function()).inc()
        start = audit.month_start()
        renews = (start + timedelta(days=32)).replace(day=1)
        raise BudgetExhausted(spent, budget, renews)
