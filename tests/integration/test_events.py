"""Events between the functions: a local sink that captures what Harvey emits, and
`harvey events send`, which delivers the way a Knative broker does."""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid

import pytest
from click.testing import CliRunner


def _send(*args: str):
    from harvey.cli import main

    return CliRunner().invoke(main, ["events", "send", *args])


def test_send_is_binary_mode_with_the_given_source_and_id(sink):
    result = _send(
        "com.harvey.feedback.submitted",
        "--data",
        '{"rating": 1}',
        "--to",
        sink.url,
        "--source",
        "/local/test",
        "--id",
        "ev-1",
    )
    assert result.exit_code == 0, result.output
    (event,) = sink.events
    assert event["type"] == "com.harvey.feedback.submitted" and event["source"] == "/local/test"
    assert event["id"] == "ev-1" and event["specversion"] == "1.0" and event["data"] == {"rating": 1}
    assert json.loads(result.stdout.strip().splitlines()[-1])["status"] == 202


@pytest.mark.parametrize("status", [500, 503, 404, 408, 409, 429])
def test_send_retries_what_a_broker_retries(sink, status):
    sink.statuses = [status, status]
    result = _send("t.x", "--data", "{}", "--to", sink.url, "--backoff", "0")
    assert result.exit_code == 0 and len(sink.events) == 3
    assert len({e["id"] for e in sink.events}) == 1  # redeliveries keep the id: recipients dedupe


@pytest.mark.parametrize("status", [400, 401, 403, 413, 422])
def test_send_stops_on_a_final_4xx_and_fails(sink, status):
    sink.statuses = [status]
    result = _send("t.x", "--data", "{}", "--to", sink.url, "--backoff", "0")
    assert result.exit_code == 1 and len(sink.events) == 1


def test_send_gives_up_after_its_attempts(sink):
    sink.statuses = [503] * 5
    result = _send("t.x", "--data", "{}", "--to", sink.url, "--backoff", "0", "--attempts", "3")
    assert result.exit_code == 1 and len(sink.events) == 3


def test_send_rejects_bad_json():
    result = _send("t.x", "--data", "{nope", "--to", "http://127.0.0.1:9/")
    assert result.exit_code == 2 and "--data" in result.output


def test_end_to_end_feedback_through_the_cli_and_a_served_function(make_tenant, sink, settings_env):
    """`harvey events send` → feedback function (in-process server) → row + recorded event in the sink."""
    from functions_framework import create_app
    from werkzeug.serving import make_server

    from tests.integration.test_feedback import finished_run

    tenant, _ = make_tenant()
    settings_env(K_SINK=sink.url)
    app = create_app("feedback", "functions/feedback/main.py")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        data = json.dumps({"tenant_id": tenant.id, "run_id": finished_run(tenant), "rating": 1})
        event_id = str(uuid.uuid4())
        first = _send("com.harvey.feedback.submitted", "--data", data, "--to", url, "--id", event_id)
        again = _send("com.harvey.feedback.submitted", "--data", data, "--to", url, "--id", event_id)
    finally:
        server.shutdown()
    assert first.exit_code == 0 and again.exit_code == 0
    assert json.loads(first.stdout.strip().splitlines()[-1])["status"] == 201
    assert json.loads(again.stdout.strip().splitlines()[-1])["status"] == 200
    from harvey import events

    assert events.drain()  # the server thread wrote the recorded event without waiting for its reply
    assert [e["type"] for e in sink.events] == ["com.harvey.feedback.recorded"]


# --- sender tokens on outgoing events (HARVEY_EVENTS_SINK_TOKEN_FILE, `--token-file`) -----------------

TOKEN_A = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnLWE"
TOKEN_B = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiIn0.c2lnLWI"


@pytest.fixture
def events_log():
    """Every record harvey.events logs during the test, extras included (logs.setup may reroute the root)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("harvey.events")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def logged_text(records) -> str:
    return "\n".join(f"{r.getMessage()} {vars(r)!r}" for r in records)


def projected_token(folder, token: str, generation: int) -> None:
    """Write `token` the way the kubelet updates a projected volume: a new timestamped directory, then
    an atomic swap of the `..data` symlink that `token` points through."""
    version = folder / f"..2026_01_01_00_00_0{generation}"
    version.mkdir()
    (version / "token").write_text(token + "\n")
    (folder / "..data_tmp").symlink_to(version.name)
    os.replace(folder / "..data_tmp", folder / "..data")
    if not (folder / "token").is_symlink():
        (folder / "token").symlink_to("..data/token")


def failed_count(event_type: str) -> float:
    from harvey import metrics

    return metrics.EVENTS_EMITTED.labels(type=event_type, outcome="failed")._value.get()


def test_emit_sends_the_token_file_as_a_bearer_token(sink, settings_env, tmp_path, events_log):
    from harvey import events

    (tmp_path / "token").write_text(TOKEN_A + "\n")
    settings_env(K_SINK=sink.url, HARVEY_EVENTS_SINK_TOKEN_FILE=str(tmp_path / "token"))
    assert events.emit("com.harvey.document.generated", {"run_id": "r1"}) is True
    assert sink.headers[0]["Authorization"] == f"Bearer {TOKEN_A}"
    assert TOKEN_A not in logged_text(events_log)


def test_emit_without_a_token_file_sends_no_authorization(sink, settings_env):
    from harvey import events

    settings_env(K_SINK=sink.url)
    assert events.emit("com.harvey.document.generated", {"run_id": "r1"}) is True
    assert "Authorization" not in sink.headers[0]


def test_a_rotated_token_is_sent_from_the_next_event_on(sink, settings_env, tmp_path):
    from harvey import events

    projected_token(tmp_path, TOKEN_A, 1)
    settings_env(K_SINK=sink.url, HARVEY_EVENTS_SINK_TOKEN_FILE=str(tmp_path / "token"))
    assert events.emit("com.harvey.document.generated", {"n": 1})
    projected_token(tmp_path, TOKEN_B, 2)
    assert events.emit("com.harvey.document.generated", {"n": 2})
    assert [h["Authorization"] for h in sink.headers] == [f"Bearer {TOKEN_A}", f"Bearer {TOKEN_B}"]


@pytest.mark.parametrize(
    "content",
    [None, "", "  \n", f"{TOKEN_A}\nX-Injected: 1", f"{TOKEN_A} trailing", "tok\u00e9n-" + TOKEN_A],
    ids=["missing", "empty", "blank", "two-lines", "space-inside", "non-ascii"],
)
def test_an_unreadable_token_file_fails_the_send_without_raising_or_logging_it(
    sink, settings_env, tmp_path, events_log, content
):
    from harvey import events

    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    settings_env(K_SINK=sink.url, HARVEY_EVENTS_SINK_TOKEN_FILE=str(path))
    before = failed_count("t.token")
    assert events.emit("t.token", {"a": 1}, run_id="run-7") is False
    assert failed_count("t.token") == before + 1
    assert sink.events == [], "nothing goes out without a usable token"
    (record,) = events_log
    assert record.getMessage() == "event not sent: sink token unreadable" and record.run_id == "run-7"
    assert str(path) in record.error
    assert TOKEN_A not in logged_text(events_log)


def test_a_token_the_sink_refuses_is_a_failed_send_and_is_not_logged(sink, settings_env, tmp_path, events_log):
    from harvey import events

    (tmp_path / "token").write_text(TOKEN_A)
    settings_env(K_SINK=sink.url, HARVEY_EVENTS_SINK_TOKEN_FILE=str(tmp_path / "token"))
    sink.statuses = [401]
    before = failed_count("t.refused")
    assert events.emit("t.refused", {"a": 1}) is False
    assert failed_count("t.refused") == before + 1
    assert [r.getMessage() for r in events_log] == ["event rejected by sink"] and events_log[0].status == 401
    assert TOKEN_A not in logged_text(events_log)


def test_send_posts_the_token_file_as_a_bearer_token_on_every_attempt(sink, tmp_path):
    (tmp_path / "token").write_text(TOKEN_A + "\n")
    sink.statuses = [503]
    result = _send("t.x", "--data", "{}", "--to", sink.url, "--backoff", "0", "--token-file", str(tmp_path / "token"))
    assert result.exit_code == 0, result.output
    assert [h["Authorization"] for h in sink.headers] == [f"Bearer {TOKEN_A}"] * 2
    assert TOKEN_A not in result.output


def test_send_reads_the_token_from_stdin_or_the_environment(sink, tmp_path):
    from harvey.cli import main

    runner = CliRunner()
    piped = runner.invoke(
        main, ["events", "send", "t.x", "--data", "{}", "--to", sink.url, "--token-file", "-"], input=TOKEN_A + "\n"
    )
    (tmp_path / "token").write_text(TOKEN_B)
    from_env = runner.invoke(
        main,
        ["events", "send", "t.x", "--data", "{}", "--to", sink.url],
        env={"HARVEY_EVENTS_TOKEN_FILE": str(tmp_path / "token")},
    )
    assert piped.exit_code == 0 and from_env.exit_code == 0, piped.output + from_env.output
    assert [h["Authorization"] for h in sink.headers] == [f"Bearer {TOKEN_A}", f"Bearer {TOKEN_B}"]


@pytest.mark.parametrize("content", [None, "", f"{TOKEN_A}\nX-Injected: 1"], ids=["missing", "empty", "two-lines"])
def test_send_refuses_an_unusable_token_file_before_posting(sink, tmp_path, content):
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    result = _send("t.x", "--data", "{}", "--to", sink.url, "--token-file", str(path))
    assert result.exit_code == 2 and "--token-file" in result.output
    assert sink.events == []
    assert TOKEN_A not in result.output


def test_send_with_a_token_file_is_accepted_by_an_oidc_protected_function(settings_env, tmp_path):
    """`harvey events send --token-file` → maintenance function (HARVEY_EVENTS_AUTH=oidc, in-process
    server) → 200; the same event without the token → 401."""
    from functions_framework import create_app
    from harvey.edge import eventauth
    from werkzeug.serving import make_server

    from tests.integration.test_event_auth import AUDIENCE, PING_SUBJECT, Issuer

    issuer = Issuer()
    eventauth._clients.clear()
    settings_env(
        HARVEY_EVENTS_AUTH="oidc",
        HARVEY_EVENTS_OIDC_ISSUER=issuer.url,
        HARVEY_EVENTS_OIDC_AUDIENCE=AUDIENCE,
        HARVEY_EVENTS_ALLOWED_SUBJECTS=PING_SUBJECT,
    )
    (tmp_path / "token").write_text(issuer.token(sub=PING_SUBJECT))
    server = make_server("127.0.0.1", 0, create_app("maintenance", "functions/maintenance/main.py"), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        data = '{"task": "retention", "dry_run": true}'
        refused = _send("dev.knative.sources.ping", "--data", data, "--to", url, "--attempts", "1")
        accepted = _send(
            "dev.knative.sources.ping",
            "--data",
            data,
            "--to",
            url,
            "--attempts",
            "1",
            "--token-file",
            str(tmp_path / "token"),
        )
    finally:
        server.shutdown()
        issuer.close()
        eventauth._clients.clear()
    assert json.loads(refused.stdout.strip().splitlines()[-1])["status"] == 401
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.stdout.strip().splitlines()[-1])["status"] == 200


def test_binary_events_are_what_cloudevents_reads(settings_env):
    """`events.binary` writes binary content mode by hand (for speed); cloudevents' own parser is the judge."""
    from cloudevents.http import from_http
    from harvey import events

    settings_env(K_CE_OVERRIDES='{"extensions": {"tenant": "acme"}}', HARVEY_EVENT_SOURCE="/harvey/test")
    headers, body = events.binary("com.harvey.x", {"run_id": "r1", "texto": "ação"}, subject="r1", event_id="e-1")
    event = from_http(headers, body)
    attributes = (event["id"], event["source"], event["type"], event["subject"])
    assert attributes == ("e-1", "/harvey/test", "com.harvey.x", "r1")
    assert event["specversion"] == "1.0" and event["tenant"] == "acme" and event["time"]
    assert event.data == {"run_id": "r1", "texto": "ação"}


def test_events_reach_an_https_sink_only_once_its_certificate_is_trusted(settings_env, tmp_path, monkeypatch):
    from harvey import events, metrics

    from tests.integration.test_event_auth import self_signed
    from tests.support.event_sink import Sink

    certificate, key = self_signed(tmp_path)
    sink = Sink(tls=(certificate, key))
    try:
        settings_env(K_SINK=sink.url)
        assert events.emit("t.tls", {"n": 1}) is False  # an unknown certificate: counted as failed, nothing sent
        assert metrics.EVENTS_EMITTED.labels(type="t.tls", outcome="failed")._value.get() == 1
        monkeypatch.setenv("SSL_CERT_FILE", certificate)  # the system's trust store now holds it
        assert events.emit("t.tls", {"n": 2}) is True and events.emit("t.tls", {"n": 3}) is True
        assert [event["data"]["n"] for event in sink.events] == [2, 3]
    finally:
        sink.close()
