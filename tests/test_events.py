"""Events between the functions: a local sink that captures what Harvey emits, and
`harvey events send`, which delivers the way a Knative broker does."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from click.testing import CliRunner


def _send(*args: str):
    from harvey.cli import main

    return CliRunner().invoke(main, ["events", "send", *args])


def test_send_is_binary_mode_with_the_given_source_and_id(sink):
    result = _send("com.harvey.feedback.submitted", "--data", '{"rating": 1}', "--to", sink.url,
                   "--source", "/local/test", "--id", "ev-1")  # fmt: skip
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

    from tests.test_feedback import finished_run

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
    assert [e["type"] for e in sink.events] == ["com.harvey.feedback.recorded"]
