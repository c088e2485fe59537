"""Feedback at the speed of its insert: one SQL statement per event, a per-process API-key cache that a
rotation empties, and the recorded event sent off the request path through a bounded queue."""

from __future__ import annotations

import time

import pytest
from harvey import events, metrics
from harvey.store import db, tenants

from tests.integration.test_feedback import (  # noqa: F401 - `client` is a fixture
    DOCUMENT,
    client,
    finished_run,
    post,
    rows,
)
from tests.support.event_sink import Sink


@pytest.fixture
def statements(monkeypatch):
    """The SQL statements sent to PostgreSQL (the real one: this only watches `db._execute`)."""
    sent: list[str] = []
    execute = db._execute

    def watched(con, sql, params):
        sent.append(sql)
        return execute(con, sql, params)

    monkeypatch.setattr(db, "_execute", watched)
    return sent


def test_a_warm_feedback_post_is_one_sql_statement(client, make_tenant, statements):  # noqa: F811
    tenant, key = make_tenant()
    run_id = finished_run(tenant)
    assert post(client, key, {"run_id": run_id, "rating": 1}).status_code == 201  # key now verified
    statements.clear()
    body = {"run_id": run_id, "rating": -1, "error_spans": [{"start": 0, "end": len(DOCUMENT), "label": "x"}]}
    assert post(client, key, body).status_code == 201
    assert len(statements) == 1
    assert rows(tenant.id) == 2


def test_a_real_duplicate_answers_the_original_row_in_one_statement(client, make_tenant, statements):  # noqa: F811
    tenant, key = make_tenant()
    run_id = finished_run(tenant)
    first = post(client, key, {"run_id": run_id, "rating": 1}, **{"Idempotency-Key": "dup-1"})
    statements.clear()
    again = post(client, key, {"run_id": run_id, "rating": 1}, **{"Idempotency-Key": "dup-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["id"] == first.get_json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert len(statements) == 1
    other = post(client, key, {"run_id": run_id, "rating": -1}, **{"Idempotency-Key": "dup-1"})
    assert other.status_code == 422 and rows(tenant.id) == 1


def test_spans_past_the_document_store_nothing_and_name_the_span(client, make_tenant):  # noqa: F811
    tenant, key = make_tenant()
    run_id = finished_run(tenant)
    body = {"run_id": run_id, "rating": -1, "error_spans": [{"start": 0, "end": len(DOCUMENT) + 1, "label": "x"}]}
    response = post(client, key, body)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "error_spans.0.end"
    reversed_span = {"run_id": run_id, "rating": -1, "error_spans": [{"start": 5, "end": 5, "label": "x"}]}
    assert post(client, key, reversed_span).status_code == 400
    assert rows(tenant.id) == 0


def test_a_running_or_another_tenants_run_takes_no_feedback(client, make_tenant):  # noqa: F811
    tenant, key = make_tenant()
    running = finished_run(tenant)
    db.query(
        "UPDATE runs SET status = 'running' WHERE run_id = CAST(:r AS uuid) AND tenant_id = CAST(:t AS uuid)",
        r=running,
        t=tenant.id,
    )
    assert post(client, key, {"run_id": running, "rating": 1}).status_code == 409
    other, _ = make_tenant()
    assert post(client, key, {"run_id": finished_run(other), "rating": 1}).status_code == 404
    assert rows(tenant.id) == 0


def test_a_verified_key_is_trusted_until_its_ttl_then_looked_up_again(make_tenant, settings_env):
    settings_env(HARVEY_API_KEY_CACHE_S="0.3")
    tenant, key = make_tenant()
    assert tenants.authenticate(key) == tenant
    # Revoked by another process (no invalidation here): still trusted within the TTL, refused after it.
    db.query("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = CAST(:t AS uuid)", t=tenant.id)
    assert tenants.authenticate(key) == tenant
    time.sleep(0.35)
    assert tenants.authenticate(key) is None


def test_with_the_cache_off_a_revoked_key_is_refused_on_the_next_request(make_tenant, settings_env):
    settings_env(HARVEY_API_KEY_CACHE_S="0")
    tenant, key = make_tenant()
    assert tenants.authenticate(key) == tenant
    db.query("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = CAST(:t AS uuid)", t=tenant.id)
    assert tenants.authenticate(key) is None


def test_rotate_key_refuses_the_old_key_at_once_in_the_rotating_process(make_tenant, settings_env):
    settings_env(HARVEY_API_KEY_CACHE_S="3600")
    tenant, old = make_tenant()
    assert tenants.authenticate(old) == tenant
    new = tenants.rotate_key(tenant.name)
    assert tenants.authenticate(old) is None
    assert tenants.authenticate(new) == tenant


def test_flag_and_limit_changes_apply_at_once_in_the_process_that_makes_them(make_tenant, settings_env):
    settings_env(HARVEY_API_KEY_CACHE_S="3600")
    tenant, key = make_tenant()
    assert tenants.authenticate(key).force_fallback is False
    tenants.set_flags(tenant.name, force_fallback=True)
    assert tenants.authenticate(key).force_fallback is True
    tenants.set_limits(tenant.name, requests_per_minute=7)
    assert tenants.authenticate(key).requests_per_minute == 7


@pytest.fixture
def held_sink(monkeypatch):
    monkeypatch.setattr(events, "_pending", None)  # a queue of this test's depth, as in a new pod
    sink = Sink(held=True)
    yield sink
    sink.close()


def _outcome(event_type: str, outcome: str) -> float:
    return metrics.EVENTS_EMITTED.labels(type=event_type, outcome=outcome)._value.get()


def test_a_background_event_is_sent_after_the_caller_returns(held_sink, settings_env):
    settings_env(K_SINK=held_sink.url, HARVEY_EVENTS_QUEUE_DEPTH="4")
    started = time.perf_counter()
    assert events.emit("t.background", {"a": 1}, background=True) is True
    assert time.perf_counter() - started < 0.05  # the sink holds its answer: the caller did not wait
    held_sink.release.set()
    assert events.drain(5)
    assert held_sink.types == ["t.background"]
    assert _outcome("t.background", "sent") == 1


def test_a_full_event_queue_drops_and_counts_without_blocking(held_sink, settings_env):
    settings_env(K_SINK=held_sink.url, HARVEY_EVENTS_QUEUE_DEPTH="1")
    assert events.emit("t.full", {"n": 0}, background=True)  # taken by the sender, held by the sink
    deadline = time.monotonic() + 5
    while not held_sink.types and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events.emit("t.full", {"n": 1}, background=True)  # fills the queue
    started = time.perf_counter()
    assert events.emit("t.full", {"n": 2}, background=True) is False
    assert time.perf_counter() - started < 0.05
    assert _outcome("t.full", "dropped") == 1
    held_sink.release.set()
    assert events.drain(5)
    assert held_sink.types == ["t.full", "t.full"]


def test_with_no_queue_the_event_is_sent_in_the_request(held_sink, settings_env):
    settings_env(K_SINK=held_sink.url, HARVEY_EVENTS_QUEUE_DEPTH="0")
    held_sink.release.set()
    assert events.emit("t.inline", {"a": 1}, background=True) is True
    assert held_sink.types == ["t.inline"]
