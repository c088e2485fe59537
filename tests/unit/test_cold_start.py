"""Cold start: an offline chain never imports litellm; a remote chain's warm-up leaves no import to the first
draft, and the readiness probe says when that is done. Timings are `make bench`'s job; these assert behaviour."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from flask import Flask, request
from harvey.drafting import llm, prompts
from harvey.edge import http, warmup

from tests.conftest import ROOT
from tests.support.fake_openai import FakeOpenAI

REQUEST = prompts.DraftRequest(
    "parecer",
    "consumidor",
    "Prazo para reclamar de vício de produto durável",
    sources=[
        prompts.Source(
            1,
            "CDC art. 26",
            "Código de Defesa do Consumidor",
            "O direito de reclamar pelos vícios "
            "aparentes caduca em noventa dias, tratando-se de fornecimento de produtos duráveis.",
        ),
    ],
)


def _python(code: str, **env: str) -> dict:
    """Run `code` in a fresh interpreter (nothing imported yet) and return the JSON it prints last."""
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'shared'}:{ROOT}", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_an_offline_draft_never_imports_litellm():
    out = _python(
        "import json, sys\n"
        "from harvey.drafting import llm, prompts\n"
        "from tests.unit.test_cold_start import REQUEST\n"
        "llm.load()\n"
        "c = llm.complete(prompts.draft_messages(REQUEST), ['harvey/extractive'])\n"
        "print(json.dumps({'litellm': 'litellm' in sys.modules, 'ready': llm.ready(), 'model': c.model,\n"
        "                  'cited': '[1]' in c.text, 'tokens': c.tokens_output}))\n",
        HARVEY_LLM_MODELS="harvey/extractive",
    )
    assert out == {
        "litellm": False,
        "ready": True,
        "model": "harvey/extractive",
        "cited": True,
        "tokens": out["tokens"],
    }
    assert out["tokens"] > 0


def test_the_direct_offline_call_answers_exactly_what_litellm_answers(settings_env):
    with FakeOpenAI() as server:
        settings_env(HARVEY_LLM_API_BASE=server.url, HARVEY_LLM_RETRIES="0", OPENAI_API_KEY="sk-test")
        messages = prompts.draft_messages(REQUEST)
        direct = llm.complete(messages, ["harvey/extractive"])
        through = llm.complete(messages, ["openai/broken-model", "harvey/extractive"])
    assert through.model == "harvey/extractive"
    assert [a["model"] for a in through.fallbacks_tried] == ["openai/broken-model"]
    assert (direct.text, direct.tokens_input, direct.tokens_output, direct.cost_usd) == (
        through.text,
        through.tokens_input,
        through.tokens_output,
        through.cost_usd,
    )


def test_an_unknown_offline_model_falls_through_to_the_next():
    result = llm.complete(prompts.draft_messages(REQUEST), ["harvey/nonexistent", "harvey/extractive"])
    assert result.model == "harvey/extractive"
    assert result.fallbacks_tried[0]["model"] == "harvey/nonexistent"


WATCH_IMPORTS = """
import importlib.abc, json, os, sys, threading
from tests.support.fake_openai import FakeOpenAI

class Watch(importlib.abc.MetaPathFinder):
    \"\"\"Records the model client modules the calling thread imports (litellm logs on threads of its own).\"\"\"
    CLIENTS = {"litellm", "openai", "anthropic", "httpx", "httpcore", "h11", "h2", "anyio", "tiktoken", "aiohttp"}
    def __init__(self):
        self.names, self.thread = [], threading.current_thread()
    def find_spec(self, name, path, target=None):
        if threading.current_thread() is self.thread and name.split(".")[0] in self.CLIENTS:
            self.names.append(name)
        return None

with FakeOpenAI() as server:
    os.environ["HARVEY_LLM_API_BASE"] = server.url
    from harvey.drafting import llm
    before = llm.ready()
    llm.load()
    warm_calls = len(server.requests)
    watch = Watch()
    sys.meta_path.insert(0, watch)
    c = llm.complete([{"role": "user", "content": "Redija."}], llm.get_settings().llm_chain)
    sys.meta_path.remove(watch)
print(json.dumps({"before": before, "after": llm.ready(), "warm_calls": warm_calls, "model": c.model,
                  "imported_by_first_call": watch.names}))
"""


def test_a_remote_chain_warm_up_leaves_the_first_completion_nothing_to_import():
    out = _python(
        WATCH_IMPORTS,
        HARVEY_LLM_MODELS="openai/good-model,harvey/extractive",
        OPENAI_API_KEY="sk-test",
        HARVEY_LLM_RETRIES="0",
    )
    assert out == {
        "before": False,
        "after": True,
        "warm_calls": 0,
        "model": "openai/good-model",
        "imported_by_first_call": [],
    }


@pytest.fixture
def fresh_warmup(monkeypatch):
    """This process's warm-up state, as in a new pod: nothing loaded yet."""
    monkeypatch.setattr(warmup, "_started", threading.Event())
    monkeypatch.setattr(warmup, "_finished", threading.Event())
    monkeypatch.setattr(llm, "_registered", False)


def _probe_app() -> Flask:
    app = Flask("probe")
    function = http.Function("probe", "probe", "", http.Routes())

    @app.route("/healthz")
    def healthz():
        return http.serve(function, request)

    return app


def test_with_a_remote_chain_readiness_is_503_while_warming_and_200_once_warm(fresh_warmup, settings_env):
    settings_env(HARVEY_LLM_MODELS="openai/good-model,harvey/extractive")
    release = threading.Event()
    warmup.start(lambda: release.wait(30))
    client = _probe_app().test_client()
    warming = client.get("/healthz?ready=1")
    assert warming.status_code == 503 and warming.headers["Retry-After"] == "1"
    assert warming.get_json()["status"] == "warming"
    live = client.get("/healthz")
    assert live.status_code == 200 and live.get_json()["warm_up"] == "running"
    release.set()
    assert warmup._finished.wait(10)
    ready = client.get("/healthz?ready=1")
    assert ready.status_code == 200 and ready.get_json()["warm_up"] == "done"


def test_with_the_offline_chain_readiness_does_not_wait_for_the_index(fresh_warmup):
    release = threading.Event()
    warmup.start(lambda: release.wait(30))
    try:
        ready = _probe_app().test_client().get("/healthz?ready=1")
        assert ready.status_code == 200 and ready.get_json()["warm_up"] == "running"
    finally:
        release.set()


def test_a_failed_warm_up_step_still_lets_the_pod_become_ready(fresh_warmup, settings_env):
    settings_env(HARVEY_LLM_MODELS="openai/good-model,harvey/extractive")

    def broken() -> None:
        raise RuntimeError("index unreachable")

    warmup.start(broken)
    assert warmup._finished.wait(10)
    assert _probe_app().test_client().get("/healthz?ready=1").status_code == 200


def test_a_function_without_warm_up_is_ready_at_once(fresh_warmup):
    assert _probe_app().test_client().get("/healthz?ready=1").status_code == 200
