"""Shed, don't queue: past HARVEY_MAX_IN_FLIGHT a pod answers 503 + Retry-After at once, over real HTTP."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest
from flask import Flask, Response, request
from harvey.edge import http
from werkzeug.serving import make_server

from tests.unit.test_cold_start import _python


@pytest.fixture
def server():
    """A threaded HTTP server over `http.serve` whose POST / holds its thread until `release` is set."""
    entered, release = threading.Semaphore(0), threading.Event()

    def slow(_request) -> Response:
        entered.release()
        release.wait(30)
        return http.json_response({"done": True})

    function = http.Function("shed", "shed", "", http.Routes(http.Route("POST", "/", slow, "slow")))
    app = Flask("shed")

    @app.route("/", methods=["POST"])
    @app.route("/<path:path>", methods=["GET"])
    def edge(path: str = ""):
        return http.serve(function, request)

    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", entered, release
    finally:
        release.set()
        httpd.shutdown()


def _call(url: str, method: str = "POST") -> tuple[int, dict[str, str], float]:
    started = time.perf_counter()
    req = urllib.request.Request(url, data=b"{}" if method == "POST" else None, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310 - loopback
            status, headers = response.status, dict(response.headers)
            response.read()
    except urllib.error.HTTPError as exc:
        status, headers = exc.code, dict(exc.headers)
        exc.read()
    return status, headers, time.perf_counter() - started


def _fill(url: str, entered: threading.Semaphore, n: int) -> list[int]:
    statuses: list[int] = []
    for _ in range(n):
        threading.Thread(target=lambda: statuses.append(_call(url + "/")[0]), daemon=True).start()
        assert entered.acquire(timeout=10)
    return statuses


def _shed_count() -> float:
    return http.SHED.labels("shed")._value.get()


def test_over_the_in_flight_limit_the_answer_is_503_with_retry_after_within_50_ms(server, settings_env):
    settings_env(HARVEY_MAX_IN_FLIGHT="2")
    url, entered, release = server
    held = _fill(url, entered, 2)
    shed_before = _shed_count()
    status, headers, seconds = _call(url + "/")
    assert status == 503 and headers["Retry-After"] == "1"
    assert seconds < 0.05
    assert _shed_count() == shed_before + 1
    assert _call(url + "/healthz", "GET")[0] == 200  # probes and metrics are never refused
    assert _call(url + "/metrics", "GET")[0] == 200
    release.set()
    deadline = time.monotonic() + 10
    while len(held) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held == [200, 200]
    assert _call(url + "/")[0] == 200  # the slots were given back


def test_the_limit_defaults_to_the_thread_count(server, settings_env, monkeypatch):
    monkeypatch.setenv("THREADS", "1")
    settings_env()
    url, entered, _ = server
    _fill(url, entered, 1)
    assert _call(url + "/")[0] == 503


def test_a_handler_that_fails_gives_its_slot_back(settings_env):
    settings_env(HARVEY_MAX_IN_FLIGHT="1")

    def broken(_request) -> Response:
        raise RuntimeError("boom")

    function = http.Function("shed", "shed", "", http.Routes(http.Route("GET", "/", broken, "broken")))
    app = Flask("broken")
    app.add_url_rule("/", view_func=lambda: http.serve(function, request))
    client = app.test_client()
    assert [client.get("/").status_code for _ in range(3)] == [500, 500, 500]


def test_a_booted_function_hands_the_interpreter_lock_over_within_half_a_millisecond():
    """A 503 past the limit takes the interpreter lock a dozen times; at CPython's default (5 ms) each wait
    behind a CPU-bound draft added up to sheds of 120–355 ms at p99 (bench/run.py's overload row)."""
    found = _python(
        "import json, sys; from harvey.edge import http; http.boot(); "
        "print(json.dumps({'interval': sys.getswitchinterval()}))"
    )
    assert found["interval"] == pytest.approx(0.0005)
