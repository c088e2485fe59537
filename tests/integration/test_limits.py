"""Per-tenant rate limits and monthly budgets: the Redis token bucket, its per-process fallback,
the budget from run_audit, the HTTP answers (429 + Retry-After, 402) and `harvey tenant limits`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from harvey.store import audit, db, kvstore, limits, tenants
from harvey.store.tenants import Tenant

from tests.support.redis_server import PrivateRedis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VALID = {"doc_type": "parecer", "task": "Prazo para reclamar de vício de produto durável"}


@pytest.fixture(autouse=True)
def fresh_state():
    kvstore.reset()
    limits.reset_local()
    yield
    kvstore.reset()
    limits.reset_local()


@pytest.fixture(scope="module")
def client():
    from functions_framework import create_app

    return create_app("generate", "functions/generate/main.py").test_client()


def _tenant(rpm: int | None = None, budget: float | None = None) -> Tenant:
    return Tenant(str(uuid.uuid4()), "t", requests_per_minute=rpm, monthly_budget_usd=budget)


def _refusal(tenant: Tenant) -> limits.RateLimited:
    with pytest.raises(limits.RateLimited) as caught:
        limits.admit(tenant)
    return caught.value


def test_bucket_admits_a_burst_of_rpm_then_refuses_with_retry_after():
    tenant = _tenant(rpm=3)
    for _ in range(3):
        limits.admit(tenant)
    refused = _refusal(tenant)
    assert 1 <= refused.retry_after_s <= 20  # one token every 60/3 s
    assert "3 requests per minute" in str(refused)


def test_bucket_lives_in_redis_with_a_ttl_and_is_shared_by_processes():
    tenant = _tenant(rpm=2)
    limits.admit(tenant)
    limits.admit(tenant)
    ttl = kvstore.client().pttl(f"harvey:ratelimit:{tenant.id}")
    assert 0 < ttl <= 61000
    code = (
        "import sys; from harvey.store import limits; from harvey.store.tenants import Tenant\n"
        f"t = Tenant({tenant.id!r}, 't', requests_per_minute=2)\n"
        "try:\n    limits.admit(t)\nexcept limits.RateLimited as e:\n    sys.exit(3)\n"
    )
    other_pod = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=os.environ, timeout=60)
    assert other_pod.returncode == 3, "a second process sees the tokens this one took"


def test_bucket_refills_at_rpm_per_minute():
    tenant = _tenant(rpm=120)  # two tokens a second
    for _ in range(120):
        limits.admit(tenant)
    _refusal(tenant)
    time.sleep(0.7)
    limits.admit(tenant)


def test_no_limit_admits_everything():
    tenant = _tenant(rpm=None)
    for _ in range(50):
        limits.admit(tenant)


def test_dead_redis_falls_back_to_a_per_process_bucket(settings_env):
    redis = PrivateRedis()
    settings_env(REDIS_URL=redis.url)
    kvstore.reset()
    redis.kill()
    tenant = _tenant(rpm=2)
    limits.admit(tenant)
    limits.admit(tenant)
    assert _refusal(tenant).retry_after_s >= 1


def test_hung_redis_costs_one_timeout_then_the_local_bucket_answers(settings_env):
    redis = PrivateRedis()
    try:
        settings_env(REDIS_URL=redis.url, HARVEY_BREAKER_OPEN_S="30")
        kvstore.reset()
        tenant = _tenant(rpm=100)
        limits.admit(tenant)
        redis.hang()
        started = time.perf_counter()
        for _ in range(10):
            limits.admit(tenant)
        assert time.perf_counter() - started < 1.5  # one 0.5 s timeout, not ten
    finally:
        redis.kill()


def _audit_cost(tenant_id: str, cost: float) -> str:
    now = datetime.now(UTC)
    run_id = str(uuid.uuid4())
    audit.write(
        audit.RunRecord(
            run_id=run_id,
            tenant_id=tenant_id,
            task="t",
            prompt_version="p",
            input_hash="h",
            started_at=now,
            ended_at=now,
            success=True,
            estimated_cost_usd=cost,
        )
    )
    return run_id


def test_month_cost_sums_only_this_calendar_month_of_the_tenant(make_tenant):
    tenant, _ = make_tenant()
    other, _ = make_tenant()
    _audit_cost(tenant.id, 0.25)
    _audit_cost(tenant.id, 0.5)
    old = _audit_cost(tenant.id, 9.0)
    _audit_cost(other.id, 7.0)
    last_month = audit.month_start() - timedelta(days=1)
    db.query("UPDATE run_audit SET created_at = :at WHERE run_id = CAST(:run AS uuid)", at=last_month, run=old)
    assert audit.month_cost(tenant.id) == pytest.approx(0.75)


def test_budget_is_exhausted_once_the_month_cost_reaches_it(make_tenant):
    tenant, _ = make_tenant()
    limited = tenants.set_limits(tenant.name, monthly_budget_usd=1.0)
    limits.check_budget(limited)
    _audit_cost(tenant.id, 1.0)
    with pytest.raises(limits.BudgetExhausted) as caught:
        limits.check_budget(limited)
    assert caught.value.renews > datetime.now(UTC) and caught.value.renews.day == 1


def _post(client, key: str, body=VALID):
    return client.post(
        "/", data=json.dumps(body), headers={"Authorization": f"Bearer {key}"}, content_type="application/json"
    )


def test_third_request_over_a_limit_of_two_per_minute_is_429_with_retry_after(client, make_tenant):
    tenant, key = make_tenant()
    tenants.set_limits(tenant.name, requests_per_minute=2)
    assert [_post(client, key).status_code for _ in range(2)] == [422, 422]  # no documents: but admitted
    third = _post(client, key)
    assert third.status_code == 429
    assert 1 <= int(third.headers["Retry-After"]) <= 30
    assert "2 requests per minute" in third.get_json()["error"]["message"]
    status = client.get(f"/runs/{uuid.uuid4()}", headers={"Authorization": f"Bearer {key}"})
    assert status.status_code == 429  # every authenticated request takes a token


def test_event_deliveries_over_the_limit_get_429_so_the_broker_retries(client, make_tenant):
    tenant, _ = make_tenant()
    tenants.set_limits(tenant.name, requests_per_minute=1)

    def deliver(event_id: str):
        headers = {
            "ce-specversion": "1.0",
            "ce-type": "com.harvey.generate.requested",
            "ce-source": "/test",
            "ce-id": event_id,
        }
        return client.post(
            "/", data=json.dumps({**VALID, "tenant_id": tenant.id}), headers=headers, content_type="application/json"
        )

    assert deliver(f"ev-{uuid.uuid4()}").status_code == 200
    refused = deliver(f"ev-{uuid.uuid4()}")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


def test_spent_budget_is_402_and_the_refused_run_is_audited(client, make_tenant):
    tenant, key = make_tenant()
    tenants.set_limits(tenant.name, monthly_budget_usd=0.5)
    _audit_cost(tenant.id, 0.6)
    response = _post(client, key)
    assert response.status_code == 402
    body = response.get_json()
    assert "monthly model budget" in body["error"]["message"] and "Retry-After" not in response.headers
    row = audit.get(tenant.id, body["run_id"])
    assert row is not None and row["success"] is False and "budget" in row["error_message"]
    assert audit.verify(tenant.id).ok


def test_cli_limits_sets_shows_and_clears(make_tenant):
    from harvey.cli import main

    tenant, _ = make_tenant()
    runner = CliRunner()
    shown = runner.invoke(
        main, ["tenant", "limits", tenant.name, "--requests-per-minute", "30", "--monthly-budget-usd", "12.5"]
    )
    assert shown.exit_code == 0, shown.output
    assert "requests_per_minute: 30" in shown.output and "monthly_budget_usd: 12.50" in shown.output
    assert tenants.by_name(tenant.name).requests_per_minute == 30
    only_budget = runner.invoke(main, ["tenant", "limits", tenant.name, "--requests-per-minute", "0", "--json"])
    assert json.loads(only_budget.output) == {
        "tenant": tenant.name,
        "requests_per_minute": None,
        "monthly_budget_usd": 12.5,
        "spent_this_month_usd": 0.0,
    }
    cleared = runner.invoke(main, ["tenant", "limits", tenant.name, "--clear"])
    assert "requests_per_minute: unlimited" in cleared.output and "monthly_budget_usd: unlimited" in cleared.output
    assert tenants.by_name(tenant.name).monthly_budget_usd is None


def test_cli_limits_help_explains_the_answers_and_refuses_negative_values(make_tenant):
    from harvey.cli import main

    runner = CliRunner()
    helped = runner.invoke(main, ["tenant", "limits", "--help"])
    assert helped.exit_code == 0 and "429" in helped.output and "402" in helped.output and "--clear" in helped.output
    tenant, _ = make_tenant()
    refused = runner.invoke(main, ["tenant", "limits", tenant.name, "--requests-per-minute", "-1"])
    assert refused.exit_code != 0 and tenants.by_name(tenant.name).requests_per_minute is None
