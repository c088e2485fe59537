"""Feedback at the speed of its insert: one SQL statement per event, a per-process API-key cache that a
rotation empties, and the recorded event written without waiting for the sink's reply."""

from __future__ import annotations

import threading
import time

import pytest
from harvey import events, metrics
from harvey.store import db, tenants

from tests.integration.test_events import events_log  # noqa: F401 - a fixture
from tests.integration.test_feedback import (  # noqa: F401 - `client` is a fixture
    DOCUMENT,
    _deliver,
    _event,
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


def test_a_duplicate_racing_its_uncommitted_original_waits_for_it_and_answers_its_row(make_tenant):
    from harvey.store import feedback

    tenant, _ = make_tenant()
    run_id = finished_run(tenant)
    body = {"run_id": run_id, "rating": 1}
    answers: list[feedback.Recorded] = []
    with db.transaction():  # the original: inserted, not yet committed
        original = feedback.record(tenant.id, dict(body), dedupe_key="ce:/race 1")
        racer = threading.Thread(
            target=lambda: answers.append(feedback.record(tenant.id, dict(body), dedupe_key="ce:/race 1"))
        )
        racer.start()
        racer.join(0.5)
        assert racer.is_alive() and not answers  # held on the unique key until the original commits
    racer.join(10)
    assert original.created and answers == [feedback.Recorded(original.id, created=False)]
    assert rows(tenant.id) == 1


def test_storing_feedback_reads_no_feedback_row_but_through_the_unique_key():
    """Whatever the statistics when the statement was prepared (a generic plan is kept for the connection's
    life), a duplicate is found by ON CONFLICT's arbiter index: the plan scans no feedback_events index. The
    statement it replaced, planned on a new table, filtered every row of the tenant on each insert."""
    import re

    from harvey.store import feedback

    names = list(dict.fromkeys(re.findall(r":(\w+)", feedback._RECORD)))
    positional = re.sub(r":(\w+)", lambda m: f"${names.index(m.group(1)) + 1}", feedback._RECORD)
    with db.transaction():
        db.query("SET LOCAL plan_cache_mode = force_generic_plan")  # the plan does not depend on the values
        db.query(f"PREPARE record_plan AS {positional}")
        plan = [r["QUERY PLAN"] for r in db.query(f"EXPLAIN EXECUTE record_plan({', '.join(['NULL'] * len(names))})")]
        db.query("DEALLOCATE record_plan")
    assert any("Conflict Arbiter Indexes: feedback_events_tenant_id_dedupe_key_key" in line for line in plan)
    assert not [line for line in plan if "Scan" in line and "on feedback_events" in line]


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


def test_a_warm_cloudevent_delivery_is_one_sql_statement(client, make_tenant, statements):  # noqa: F811
    tenant, _ = make_tenant()
    run_id = finished_run(tenant)
    assert _deliver(client, _event(tenant.id, {"run_id": run_id, "rating": 1})).status_code == 201
    statements.clear()
    assert _deliver(client, _event(tenant.id, {"run_id": run_id, "rating": -1})).status_code == 201
    assert len(statements) == 1
    assert rows(tenant.id) == 2


def test_a_tenant_named_by_id_is_remembered_for_the_ttl_and_changes_here_apply_at_once(make_tenant, settings_env):
    settings_env(HARVEY_API_KEY_CACHE_S="0.3")
    tenant, _ = make_tenant()
    assert tenants.recent_by_id(tenant.id) == tenant
    # Changed by another process: the remembered tenant holds within the TTL, the stored one after it.
    db.query("UPDATE tenants SET requests_per_minute = 5 WHERE id = CAST(:t AS uuid)", t=tenant.id)
    assert tenants.recent_by_id(tenant.id).requests_per_minute is None
    time.sleep(0.35)
    assert tenants.recent_by_id(tenant.id).requests_per_minute == 5
    tenants.set_limits(tenant.name, requests_per_minute=9)  # in this process: at once
    assert tenants.recent_by_id(tenant.id).requests_per_minute == 9
    with pytest.raises(tenants.UnknownTenant):
        tenants.recent_by_id("00000000-0000-0000-0000-000000000000")


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
def held_sink():
    sink = Sink(held=True)
    yield sink
    sink.release.set()
    events.drain()
    sink.close()


def _outcome(event_type: str, outcome: str) -> float:
    return metrics.EVENTS_EMITTED.labels(type=event_type, outcome=outcome)._value.get()


def _received(sink: Sink, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(sink.events) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(sink.events) == count


def test_a_background_event_is_written_without_waiting_and_counted_when_its_reply_is_read(held_sink, settings_env):
    settings_env(K_SINK=held_sink.url)
    started = time.perf_counter()
    assert events.emit("t.background", {"a": 1}, background=True) is True
    assert time.perf_counter() - started < 0.05  # the sink holds its answer: the caller did not wait
    _received(held_sink, 1)
    assert _outcome("t.background", "sent") == 0  # not answered yet: not counted yet
    held_sink.release.set()
    assert events.drain()
    assert _outcome("t.background", "sent") == 1 and held_sink.types == ["t.background"]


def test_a_connections_next_event_reads_the_reply_before_it_is_written(sink, settings_env, events_log):  # noqa: F811
    settings_env(K_SINK=sink.url)
    kept = events.LINKS_PER_THREAD
    sink.statuses = [500] * kept  # all refused, in whatever order the sink takes the connections
    for n in range(kept):  # one unread event on each of the thread's connections
        assert events.emit("t.next", {"n": n}, background=True, run_id=f"run-{n}") is True
    assert _outcome("t.next", "failed") == 0 and _outcome("t.next", "sent") == 0
    assert events.emit("t.next", {"n": kept}, background=True, run_id="run-last") is True  # the first one's turn
    assert _outcome("t.next", "failed") == 1 and _outcome("t.next", "sent") == 0  # the first, refused
    (record,) = events_log
    assert record.getMessage() == "event rejected by sink" and (record.run_id, record.status) == ("run-0", 500)
    assert events.drain() and _outcome("t.next", "failed") == kept and _outcome("t.next", "sent") == 1
    assert sorted(e["data"]["n"] for e in sink.events) == list(range(kept + 1))  # across connections, any order


def test_a_metrics_scrape_counts_an_answered_event_without_waiting_for_another(client, sink, settings_env):  # noqa: F811
    settings_env(K_SINK=sink.url)
    sink.statuses = [503]
    assert events.emit("t.scraped", {"a": 1}, background=True) is True
    _received(sink, 1)
    deadline = time.monotonic() + 5
    while _outcome("t.scraped", "failed") == 0 and time.monotonic() < deadline:
        exposition = client.get("/metrics").get_data(as_text=True)  # the reply may still be on its way
    assert 'events_emitted_total{outcome="failed",type="t.scraped"} 1.0' in exposition


def test_events_take_the_threads_kept_alive_connections_in_turn_and_a_stale_one_is_reopened_once(settings_env):
    sink = Sink(keep_alive=True)
    kept = events.LINKS_PER_THREAD
    try:
        settings_env(K_SINK=sink.url)
        for n in range(2 * kept):
            assert events.emit("t.kept", {"n": n}, background=True)
        assert events.drain() and len(sink.connections) == kept
        sink.close_idle()  # the sink drops its idle connections: the next events are written into closed ones
        time.sleep(0.05)  # the server's handler threads see the end of their connections and close them
        for n in range(2 * kept, 3 * kept):
            assert events.emit("t.kept", {"n": n}, background=True)
        assert events.drain()
        received = sorted(e["data"]["n"] for e in sink.events)  # two connections: their order is the sink's
        assert received == list(range(3 * kept)) and len(sink.connections) == 2 * kept
        assert _outcome("t.kept", "sent") == 3 * kept and _outcome("t.kept", "failed") == 0
    finally:
        sink.close()


def test_a_thread_that_ended_leaves_no_unread_event_behind(sink, settings_env):
    settings_env(K_SINK=sink.url)
    worker = threading.Thread(target=events.emit, args=("t.ended", {"a": 1}), kwargs={"background": True})
    worker.start()
    worker.join()
    assert events.emit("t.other", {"a": 1}, background=True)  # this thread's new link settles the ended one's
    assert _outcome("t.ended", "sent") == 1
    assert all(link.owner.is_alive() for link in events._links)
