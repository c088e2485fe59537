"""The defects an outside probe found (issue 9), each pinned by a test against the real stores.

Connections that raised are never reused dirty; runs are tenant-scoped; async work is bounded
and nothing stays queued forever; hostile input is a 400 naming the field, never a 5xx; a
database that is starting up or hung is a quick 503 that names no host; route labels stay bounded.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from harvey.drafting import runs
from harvey.schemas import GenerateRequest
from harvey.store import audit, db

from tests.integration.test_generate_http import VALID


@pytest.fixture(scope="module")
def apps():
    from functions_framework import create_app

    return {
        name: create_app(name, f"functions/{name}/main.py").test_client()
        for name in ("generate", "feedback", "maintenance")
    }


@pytest.fixture
def one_connection(settings_env):
    """A pool of one: what THREADS=1 gives in production, so a dirty connection would be reused."""
    settings_env(HARVEY_DB_POOL_SIZE="1")
    db.reset()
    yield
    db.reset()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _finished_run(tenant, doc_type: str = "parecer") -> str:
    run_id = str(uuid.uuid4())
    runs.create(
        tenant, runs.Job(GenerateRequest(doc_type=doc_type, task="Parecer sobre prazo")), run_id=run_id, origin="sync"
    )
    db.query("UPDATE runs SET status = 'succeeded', document_chars = 100 WHERE run_id = CAST(:r AS uuid)", r=run_id)
    return run_id


# ------------------------------------------------------------------ 1. dirty connections


@pytest.mark.parametrize(
    "value",
    ["\ud800", datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))],
    ids=["lone-surrogate", "datetime-before-year-1-in-utc"],
)
def test_a_value_pg8000_cannot_encode_does_not_poison_the_next_query(one_connection, value):
    with pytest.raises(Exception):  # noqa: B017 - whatever pg8000 raises, what matters is the next query
        db.query("SELECT CAST(:v AS text) AS v, 1 AS marker", v=value)
    assert db.query("SELECT 42 AS answer") == [{"answer": 42}]
    assert db.one("SELECT CAST(:t AS text) AS t", t="ok") == {"t": "ok"}


def test_a_server_error_leaves_a_verified_connection_in_the_pool(one_connection):
    with pytest.raises(db.QueryFailed) as failed:
        db.query("SELECT CAST(:v AS int)", v="not a number")
    assert failed.value.code == "22P02"
    backend = db.one("SELECT pg_backend_pid() AS pid")
    assert db.one("SELECT pg_backend_pid() AS pid") == backend  # reused, and in step


def test_a_failed_transaction_is_rolled_back_before_the_connection_is_reused(one_connection):
    table = f"t_{uuid.uuid4().hex[:8]}"
    db.query(f"CREATE TABLE {table} (n int)")
    with pytest.raises(db.QueryFailed), db.transaction():
        db.query(f"INSERT INTO {table} VALUES (1)")  # noqa: S608 - test table name
        db.query("SELECT CAST(:v AS int)", v="boom")
    assert db.one(f"SELECT count(*) AS n FROM {table}") == {"n": 0}  # noqa: S608
    assert db.one("SELECT 1 AS one") == {"one": 1}
    db.query(f"DROP TABLE {table}")


def test_analytics_with_an_overflowing_date_is_400_and_the_next_callers_see_their_own_tenant(
    apps, make_tenant, one_connection
):
    client = apps["feedback"]
    tenant_a, key_a = make_tenant()
    tenant_b, _ = make_tenant()
    run_b = _finished_run(tenant_b)
    bad = client.get("/analytics?since=0001-01-01T00:00:00%2B14:00", headers=_bearer(key_a))
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "since"
    assert client.get("/analytics", headers=_bearer(key_a)).get_json()["total"] == 0
    garbage = client.post("/", json={"run_id": run_b, "rating": 1}, headers=_bearer("hv_garbage"))
    assert garbage.status_code == 401
    stored = db.one("SELECT count(*) AS n FROM feedback_events WHERE run_id = CAST(:r AS uuid)", r=run_b)
    assert stored == {"n": 0}


def test_a_structured_event_with_a_lone_surrogate_id_is_400_and_poisons_nothing(apps, make_tenant, one_connection):
    tenant, key = make_tenant()
    run_id = _finished_run(tenant)
    body = (
        '{"specversion": "1.0", "type": "com.harvey.feedback.submitted", "source": "/t", "id": "\\ud800", "data": {}}'
    )
    response = apps["feedback"].post("/", data=body, content_type="application/cloudevents+json")
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "id"
    summary = apps["feedback"].get(f"/runs/{run_id}/summary", headers=_bearer(key))
    assert summary.status_code == 200 and summary.get_json()["count"] == 0


# ------------------------------------------------------------------ 3. runs are tenant-scoped


def test_a_redelivered_event_naming_another_tenant_cannot_take_over_its_run(apps, make_tenant):
    tenant_a, key_a = make_tenant()
    tenant_b, _ = make_tenant()
    event = CloudEvent(
        {"type": "com.harvey.generate.requested", "source": "/intake", "id": str(uuid.uuid4())},
        {"tenant_id": tenant_a.id, **VALID},
    )
    run_id = runs.run_id_for_event(event["source"], event["id"])
    runs.create(tenant_a, runs.parse(dict(VALID), None), run_id=run_id, origin="event", status="running")
    db.query("UPDATE runs SET lease_until = now() - interval '1 second' WHERE run_id = CAST(:r AS uuid)", r=run_id)
    forged = CloudEvent(
        {"type": event["type"], "source": event["source"], "id": event["id"]}, {"tenant_id": tenant_b.id, **VALID}
    )
    headers, body = to_binary(forged)
    response = apps["generate"].post("/", data=body, headers=dict(headers))
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "id"
    row = db.one("SELECT tenant_id, status FROM runs WHERE run_id = CAST(:r AS uuid)", r=run_id)
    assert str(row["tenant_id"]) == tenant_a.id and row["status"] == "running"
    assert audit.get(tenant_b.id, run_id) is None and audit.get(tenant_a.id, run_id) is None
    assert runs.take_over(tenant_b.id, run_id) == "foreign"


# ------------------------------------------------------------------ 4. bounded async work, no run left behind


def test_a_full_async_queue_is_503_with_retry_after_and_writes_no_row(apps, indexed_tenant, settings_env, monkeypatch):
    from tests.support.fake_openai import FakeOpenAI

    tenant, key = indexed_tenant
    with FakeOpenAI(slow_seconds=1.5) as server:
        settings_env(
            HARVEY_LLM_MODELS="openai/slow-model",
            HARVEY_LLM_API_BASE=server.url,
            HARVEY_LLM_TIMEOUT_S="5",
            OPENAI_API_KEY="sk-test",
            HARVEY_ASYNC_WORKERS="1",
            HARVEY_ASYNC_QUEUE_DEPTH="1",
        )
        answers = [
            apps["generate"].post("/", json=VALID, headers={**_bearer(key), "Prefer": "respond-async"})
            for _ in range(4)
        ]
        statuses = [a.status_code for a in answers]
        assert statuses[:2] == [202, 202] and statuses[2:] == [503, 503]
        assert answers[2].headers["Retry-After"] and answers[2].get_json()["error"]["status"] == 503
        accepted = [a.get_json()["run_id"] for a in answers[:2]]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = [runs.get(tenant.id, r)["status"] for r in accepted]
            if all(s in runs.FINAL for s in states):
                break
            time.sleep(0.1)
        assert all(s in runs.FINAL for s in states)
        count = db.one(
            "SELECT count(*) AS n FROM runs WHERE tenant_id = CAST(:t AS uuid) AND origin = 'async' "
            "AND created_at > now() - interval '2 minutes'",
            t=tenant.id,
        )
        assert count["n"] == 2


def test_runs_stuck_past_their_lease_are_failed_once_with_one_audit_row(apps, make_tenant):
    tenant, _ = make_tenant()
    stuck = []
    for status in ("queued", "running"):
        run_id = str(uuid.uuid4())
        runs.create(tenant, runs.parse(dict(VALID), "req-1"), run_id=run_id, origin="async", status=status)
        stuck.append(run_id)
    alive = str(uuid.uuid4())
    runs.create(tenant, runs.parse(dict(VALID), None), run_id=alive, origin="async")
    db.query(
        "UPDATE runs SET lease_until = now() - interval '1 minute' WHERE run_id = ANY(CAST(:r AS uuid[]))", r=stuck
    )
    for _delivery in range(2):
        event = CloudEvent(
            {"type": "com.harvey.maintenance.requested", "source": "/ops", "id": str(uuid.uuid4())},
            {"task": "fail_stale_runs", "tenant_id": tenant.id},
        )
        headers, body = to_binary(event)
        assert apps["maintenance"].post("/", data=body, headers=dict(headers)).status_code == 200
    for run_id in stuck:
        row = runs.get(tenant.id, run_id)
        assert row["status"] == "failed" and "abandoned" in row["error"]["message"]
        audited = db.one(
            "SELECT count(*) AS n, bool_or(success) AS ok FROM run_audit WHERE run_id = CAST(:r AS uuid)", r=run_id
        )
        assert audited == {"n": 1, "ok": False}
    assert runs.get(tenant.id, alive)["status"] == "queued"
    assert audit.verify(tenant.id).ok


# ------------------------------------------------------------------ 5. bad input is a 400 naming the field


def _generate(apps, key, body, **headers):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return apps["generate"].post("/", data=data, content_type="application/json", headers={**_bearer(key), **headers})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("[" * 40000, "body"),
        ('{"doc_type": "parecer", "task": "Prazo', "body"),
        ({**VALID, "task": "Prazo\x00 de garantia"}, "task"),
        ({**VALID, "user_id": "ana\x00"}, "user_id"),
        ('{"doc_type": "parecer", "task": "Prazo \\udc80 de garantia"}', "task"),
        ({**VALID, "parties": {"autor\x00": "Ana"}}, "parties"),
        (b'{"doc_type": "parecer", "task": "\xff\xfe prazo"}', "body"),
    ],
    ids=["deep-nesting", "unterminated", "nul-task", "nul-user", "lone-surrogate", "nul-key", "invalid-utf8"],
)
def test_hostile_generate_bodies_are_400_naming_the_field(apps, indexed_tenant, body, field):
    _, key = indexed_tenant
    response = _generate(apps, key, body)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["field"].split(".")[0] == field and "Traceback" not in error["message"]


@pytest.mark.parametrize(
    "payload",
    [
        '{"specversion": "1.0", "type": null, "source": "/t", "id": "1", "data": {}}',
        '{"specversion": "1.0", "type": "com.harvey.feedback.submitted", "source": ["/t"], "id": "1", "data": {}}',
        '{"specversion": "1.0", "type": "com.harvey.feedback.submitted", "source": "/t", "id": 7, "data": {}}',
        '{"specversion": "1.0", "type": "com.harvey.feedback.submitted", "source": "/t", "id": "1", "data": '
        + "[" * 5000
        + "}",
        b'{"specversion": "1.0", "type": "com.harvey.feedback.submitted", "source": "/t\xff", "id": "1"}',
        '{"specversion": "1.0", "type": "com.harvey.feedback.submitted", "source": "/t", "id": "1", '
        '"data": {"comment": "CPF 123.456.789-09 \\ud800"}}',
    ],
    ids=["type-null", "source-list", "id-number", "deep-data", "invalid-utf8", "surrogate-in-data"],
)
def test_malformed_structured_events_are_400_json(apps, payload, capfd):
    for name in ("feedback", "maintenance", "generate"):
        response = apps[name].post("/", data=payload, content_type="application/cloudevents+json")
        assert response.status_code == 400, (name, response.get_data(as_text=True))
        assert response.is_json and "error" in response.get_json()
    captured = capfd.readouterr()
    assert "123.456.789-09" not in captured.out + captured.err


@pytest.mark.parametrize("header", ["ce-id", "ce-source"])
def test_a_nul_in_a_binary_event_attribute_is_400(apps, make_tenant, header):
    tenant, _ = make_tenant()
    event = CloudEvent(
        {"type": "com.harvey.maintenance.requested", "source": "/ops", "id": str(uuid.uuid4())},
        {"task": "verify_audit", "tenant_id": tenant.id},
    )
    headers, body = to_binary(event)
    headers = {**dict(headers), header: "x\x00y"}
    response = apps["maintenance"].post("/", data=body, headers=headers)
    assert response.status_code == 400 and response.get_json()["error"]["field"] in ("id", "source", "body")


def test_a_nul_in_a_maintenance_tenant_is_400(apps):
    event = CloudEvent(
        {"type": "com.harvey.maintenance.requested", "source": "/ops", "id": str(uuid.uuid4())},
        {"task": "verify_audit", "tenant": "firm\x00"},
    )
    headers, body = to_binary(event)
    response = apps["maintenance"].post("/", data=body, headers=dict(headers))
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "data.tenant"


@pytest.mark.parametrize("comment_field", ["comment", "tags", "user_id"])
def test_nul_in_feedback_fields_is_400(apps, make_tenant, comment_field):
    tenant, key = make_tenant()
    run_id = _finished_run(tenant)
    value = ["ok\x00"] if comment_field == "tags" else "ok\x00"
    response = apps["feedback"].post(
        "/", json={"run_id": run_id, "rating": 1, comment_field: value}, headers=_bearer(key)
    )
    assert response.status_code == 400 and response.get_json()["error"]["field"].startswith(comment_field)


def test_non_canonical_run_ids_are_404_not_500(apps, make_tenant):
    tenant, key = make_tenant()
    run_id = _finished_run(tenant)
    for variant in (f"urn:uuid:{run_id}", "{" + run_id + "}", run_id.replace("-", ""), run_id.upper()[:-1] + "%00"):
        response = apps["generate"].get(f"/runs/{variant}", headers=_bearer(key))
        assert response.status_code == 404, variant
        summary = apps["feedback"].get(f"/runs/{variant}/summary", headers=_bearer(key))
        assert summary.status_code == 404, variant


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2026-13-01", "x\x00"])
def test_out_of_range_since_is_400(apps, make_tenant, since):
    _, key = make_tenant()
    response = apps["feedback"].get("/analytics", query_string={"since": since}, headers=_bearer(key))
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "since"


def test_an_idempotency_key_with_a_nul_is_400(apps, make_tenant):
    tenant, key = make_tenant()
    response = apps["feedback"].post(
        "/", json={"run_id": _finished_run(tenant), "rating": 1}, headers={**_bearer(key), "Idempotency-Key": "k\x00"}
    )
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "Idempotency-Key"


@pytest.fixture
def json_log():
    """What the harvey loggers write, through the production formatter."""
    import io
    import logging

    from harvey.logs import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("harvey").addHandler(handler)
    yield stream
    logging.getLogger("harvey").removeHandler(handler)


def test_an_unexpected_error_is_json_without_internals_and_its_log_is_redacted(
    apps, make_tenant, monkeypatch, json_log
):
    from harvey.store import feedback

    def explode(*args, **kwargs):
        raise RuntimeError("boom for 123.456.789-09 at /srv/app/secret.py, partial 123.456.78")

    tenant, key = make_tenant()
    monkeypatch.setattr(feedback, "summary", explode)
    response = apps["feedback"].get(f"/runs/{uuid.uuid4()}/summary", headers=_bearer(key))
    assert response.status_code == 500
    message = response.get_json()["error"]["message"]
    assert "boom" not in message and "RuntimeError" not in message and "request_id" in message
    logged = json_log.getvalue()
    assert "123.456.789-09" not in logged and "123.456.78" not in logged
    assert "RuntimeError" in logged and response.headers["X-Request-Id"] in logged  # the operator's trail


def test_a_query_error_quoting_a_cpf_keeps_only_the_redacted_primary_message():
    with pytest.raises(db.QueryFailed) as failed:
        db.query("SELECT CAST(:v AS int)", v="123.456.789-09")
    assert "123.456.789-09" not in str(failed.value) and failed.value.code == "22P02"


# ------------------------------------------------------------------ 6. outages: quick 503s that name no host


def _fake_postgres(answer: bytes | None) -> tuple[socket.socket, int]:
    """A loopback listener that, per connection, reads the startup packet and then either sends
    `answer` (a protocol message) or nothing at all (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve() -> None:
        while True:
            try:
                con, _ = listener.accept()
            except OSError:
                return
            con.recv(1024)
            if answer is not None:
                con.sendall(answer)
                con.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener, listener.getsockname()[1]


def _error_response(code: str, message: str) -> bytes:
    fields = b"".join(k + v.encode() + b"\x00" for k, v in ((b"S", "FATAL"), (b"C", code), (b"M", message))) + b"\x00"
    return b"E" + (len(fields) + 4).to_bytes(4, "big") + fields


def test_a_database_starting_up_is_503_not_500(apps, make_tenant, settings_env):
    _, key = make_tenant()
    listener, port = _fake_postgres(_error_response("57P03", "the database system is starting up"))
    try:
        settings_env(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/test")
        db.reset()
        response = apps["feedback"].get("/analytics", headers=_bearer(key))
    finally:
        listener.close()
        settings_env()
        db.reset()
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert str(port) not in response.get_data(as_text=True) and "127.0.0.1" not in response.get_data(as_text=True)


def test_a_hung_database_is_a_503_within_the_socket_timeout_and_healthz_still_answers(apps, make_tenant, settings_env):
    _, key = make_tenant()
    listener, port = _fake_postgres(None)
    try:
        settings_env(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/test", HARVEY_DB_TIMEOUT_S="1")
        db.reset()
        started = time.monotonic()
        response = apps["feedback"].get("/analytics", headers=_bearer(key))
        elapsed = time.monotonic() - started
        assert apps["feedback"].get("/healthz").status_code == 200
    finally:
        listener.close()
        settings_env()
        db.reset()
    assert response.status_code == 503 and elapsed < 5
    assert str(port) not in response.get_data(as_text=True)


def test_an_exhausted_pool_is_503_naming_no_host(settings_env):
    settings_env(HARVEY_DB_POOL_SIZE="1", HARVEY_DB_CHECKOUT_TIMEOUT_S="0.2")
    db.reset()
    errors: list[BaseException] = []

    def second_caller() -> None:
        try:
            db.query("SELECT 1")
        except BaseException as exc:  # noqa: BLE001 - inspected below
            errors.append(exc)

    try:
        with db.transaction():  # holds the only connection
            caller = threading.Thread(target=second_caller)
            caller.start()
            caller.join()
    finally:
        db.reset()
    [error] = errors
    assert isinstance(error, db.DatabaseUnavailable) and "busy" in str(error) and "127.0.0.1" not in str(error)


def test_route_labels_are_templates_so_junk_paths_add_no_series(apps):
    client = apps["feedback"]
    for i in range(200):
        client.get(f"/junk-{i}/{uuid.uuid4()}")
        client.get(f"/runs/{uuid.uuid4()}/summary")
    exposition = client.get("/metrics").get_data(as_text=True)
    feedback_routes = {
        line.split('route="')[1].split('"')[0]
        for line in exposition.splitlines()
        if line.startswith("http_requests_total{") and 'function="feedback"' in line
    }
    assert "junk-0" not in exposition
    assert feedback_routes <= {
        "/",
        "/runs/<run_id>/summary",
        "/analytics",
        "/review/<run_id>",
        "/review/<run_id>/feedback",
        "/healthz",
        "/metrics",
        "/openapi.json",
        "unmatched",
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_stalled_uploads_time_out_instead_of_holding_every_thread(make_tenant, tmp_path):
    """Real gunicorn (functions-framework), two threads, four clients that send headers and stall."""
    import os
    import subprocess
    import sys
    import urllib.request

    _, key = make_tenant()  # a valid key: the handler gets as far as reading the body
    port = _free_port()
    env = {**os.environ, "THREADS": "2", "HARVEY_BODY_TIMEOUT_S": "1", "HARVEY_EVENTS_AUTH": "none"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "functions_framework",
            "--target",
            "feedback",
            "--source",
            "functions/feedback/main.py",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stalled: list[socket.socket] = []
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "the function never started"
                time.sleep(0.1)
        for _ in range(4):
            client = socket.create_connection(("127.0.0.1", port))
            client.sendall(
                f"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                "Content-Length: 5000\r\n\r\n{".encode()
            )
            stalled.append(client)
        started = time.monotonic()
        answer = urllib.request.urlopen(url, timeout=30)
        # bounded by HARVEY_BODY_TIMEOUT_S plus gunicorn's own 5 s drain of an unread body
        assert answer.status == 200 and time.monotonic() - started < 15
        stalled[0].settimeout(15)
        assert stalled[0].recv(4096).startswith(b"HTTP/1.1 408")
    finally:
        for client in stalled:
            client.close()
        server.terminate()
        server.wait(10)


def test_an_interrupt_during_a_transaction_never_hands_it_to_the_next_caller(one_connection):
    table = f"t_{uuid.uuid4().hex[:8]}"
    db.query(f"CREATE TABLE {table} (n int)")
    with pytest.raises(KeyboardInterrupt), db.transaction():
        db.query(f"INSERT INTO {table} VALUES (1)")  # noqa: S608 - test table name
        raise KeyboardInterrupt
    with db.transaction():
        db.query(f"INSERT INTO {table} VALUES (2)")  # noqa: S608
    assert db.query(f"SELECT n FROM {table}") == [{"n": 2}]  # noqa: S608 - the interrupted row never commits
    db.query(f"DROP TABLE {table}")


def test_invented_methods_and_double_slashes_add_no_series_and_no_redirects(apps):
    client = apps["feedback"]
    for i in range(50):
        assert client.open("/", method=f"X{i:04d}YZ").status_code == 405
    doubled = client.get("/runs//x")
    assert doubled.status_code == 404 and doubled.is_json
    exposition = client.get("/metrics").get_data(as_text=True)
    assert "X0001YZ" not in exposition and 'method="OTHER"' in exposition
