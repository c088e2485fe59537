"""Circuit breakers and the per-request model budget, against a fake model and Redis on loopback.

Timing bounds are generous (a 2 s model timeout against skips that take milliseconds) so they hold
on a busy two-core machine.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import yaml
from harvey.drafting import llm, pipeline
from harvey.schemas import GenerateRequest
from harvey.search import cache
from harvey.store import breaker, kvstore

from tests.support.fake_openai import FakeOpenAI
from tests.support.redis_server import PrivateRedis

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 2.0
MESSAGES = [{"role": "system", "content": "sistema"}, {"role": "user", "content": "Redija com base nas fontes."}]


@pytest.fixture
def fake(settings_env):
    """A fake provider; HARVEY_LLM_RETRIES=1 so a test would see a retry multiply a hang."""
    breaker.reset_models()
    kvstore.reset()
    llm.load()  # litellm's import (seconds) is not what these tests time
    with FakeOpenAI(slow_seconds=30) as server:
        settings_env(
            HARVEY_LLM_API_BASE=server.url,
            HARVEY_LLM_TIMEOUT_S=str(TIMEOUT_S),
            HARVEY_LLM_RETRIES="1",
            OPENAI_API_KEY="sk-test",
            HARVEY_BREAKER_FAILURES="1",
            HARVEY_BREAKER_OPEN_S="30",
        )
        yield server
    breaker.reset_models()
    kvstore.reset()


@pytest.fixture
def private_redis(settings_env):
    server = PrivateRedis()
    settings_env(REDIS_URL=server.url)
    kvstore.reset()
    yield server
    server.kill()
    kvstore.reset()


def _timed(chain: list[str], budget: llm.Budget | None = None) -> tuple[llm.Completion, float]:
    started = time.perf_counter()
    result = llm.complete(MESSAGES, chain, budget)
    return result, time.perf_counter() - started


def test_hanging_primary_costs_one_timeout_then_is_skipped_at_once(fake):
    fake.set_mode("primary", "hang")
    chain = ["openai/primary", "openai/good-backup"]
    llm.complete(MESSAGES, ["openai/good-warm-up"])  # litellm's first call sets up its HTTP client
    first, first_s = _timed(chain)
    assert first.model == "openai/good-backup"
    assert TIMEOUT_S * 0.9 <= first_s < TIMEOUT_S * 1.6, "one timeout: litellm's retries must not repeat the hang"
    later = [_timed(chain) for _ in range(5)]
    for result, seconds in later:
        assert result.model == "openai/good-backup"
        assert result.fallbacks_tried == [{"model": "openai/primary", "error": "circuit open"}]
        assert seconds < 0.5 * TIMEOUT_S
    assert fake.models_called().count("primary") == 1


def test_half_open_probe_recovers_when_the_primary_comes_back(fake, settings_env):
    settings_env(HARVEY_BREAKER_OPEN_S="1")
    fake.set_mode("primary", "500")
    chain = ["openai/primary", "openai/good-backup"]
    assert llm.complete(MESSAGES, chain).model == "openai/good-backup"
    assert breaker.for_model("openai/primary").state() == breaker.OPEN
    assert llm.complete(MESSAGES, chain).fallbacks_tried[0]["error"] == "circuit open"
    fake.set_mode("primary", None)
    time.sleep(1.2)
    assert llm.complete(MESSAGES, chain).model == "openai/primary"  # the probe
    assert breaker.for_model("openai/primary").state() == breaker.CLOSED
    assert llm.complete(MESSAGES, chain).model == "openai/primary"
    assert fake.models_called().count("primary") == 4  # a 500 and its retry, the probe, a normal call


def test_a_failed_probe_opens_the_breaker_again(fake, settings_env):
    settings_env(HARVEY_BREAKER_OPEN_S="1")
    fake.set_mode("primary", "500")
    chain = ["openai/primary", "openai/good-backup"]
    llm.complete(MESSAGES, chain)
    time.sleep(1.2)
    llm.complete(MESSAGES, chain)  # the probe fails
    assert llm.complete(MESSAGES, chain).fallbacks_tried[0]["error"] == "circuit open"
    assert fake.models_called().count("primary") == 4  # each 500 retried once (HARVEY_LLM_RETRIES=1)


def test_a_client_error_does_not_open_the_breaker(fake):
    fake.set_mode("primary", "400")
    chain = ["openai/primary", "openai/good-backup"]
    for _ in range(2):
        result = llm.complete(MESSAGES, chain)
        assert result.model == "openai/good-backup" and "circuit open" not in result.fallbacks_tried[0]["error"]
    assert breaker.for_model("openai/primary").state() == breaker.CLOSED
    assert fake.models_called().count("primary") == 2


def test_empty_answers_do_not_open_the_breaker_for_everyone(fake):
    """One tenant's prompts can make a provider answer nothing (a content filter): that must not shed the
    model for every other tenant."""
    fake.set_mode("primary", "empty")
    chain = ["openai/primary", "openai/good-backup"]
    for _ in range(5):
        assert llm.complete(MESSAGES, chain).model == "openai/good-backup"
    assert breaker.for_model("openai/primary").state() == breaker.CLOSED
    fake.set_mode("primary", None)
    assert llm.complete(MESSAGES, chain).model == "openai/primary"


def test_draft_and_revise_of_one_request_never_call_a_failed_model_twice(fake, settings_env):
    fake.set_mode("primary", "500")
    settings_env(HARVEY_BREAKER_FAILURES="100")  # the request budget alone must skip it
    budget = llm.Budget.start()
    assert llm.complete(MESSAGES, ["openai/primary", "openai/good-backup"], budget).model == "openai/good-backup"
    again = llm.complete(MESSAGES, ["openai/primary", "openai/good-backup"], budget)
    assert again.fallbacks_tried == [{"model": "openai/primary", "error": "failed earlier in this request"}]
    assert fake.models_called().count("primary") == 2  # the first call's one retry of a 500, then never again


def test_pipeline_run_asks_a_failed_primary_once_across_draft_and_revision(fake, settings_env, indexed_tenant):
    tenant, _ = indexed_tenant
    fake.set_mode("primary", "hang")
    settings_env(
        HARVEY_LLM_MODELS="openai/primary,openai/good-backup", HARVEY_BREAKER_FAILURES="100", HARVEY_MAX_REVISIONS="1"
    )
    request = GenerateRequest(doc_type="peticao_inicial", task="Indenização por falha de serviço bancário")
    started = time.perf_counter()
    result = pipeline.run(tenant, request).model_dump()
    elapsed = time.perf_counter() - started
    assert result["revisions"] == 1, "the fake's answer cites a [7] that does not exist: one revision"
    assert fake.models_called().count("primary") == 1
    assert [f["error"] for f in result["fallbacks_tried"]][1] == "failed earlier in this request"
    assert elapsed < TIMEOUT_S * 1.6 + 10  # one timeout, plus retrieval and checks


def test_request_deadline_bounds_the_model_time_of_a_request(fake, settings_env):
    fake.set_mode("primary", "hang")
    fake.set_mode("secondary", "hang")
    settings_env(HARVEY_BREAKER_FAILURES="100", HARVEY_LLM_TIMEOUT_S="5")  # 10 s without a deadline
    chain = ["openai/primary", "openai/secondary", "harvey/extractive"]
    result, seconds = _timed(chain, llm.Budget.start(1.0))
    assert result.model == "harvey/extractive", "the offline model answers even with the deadline spent"
    assert "HARVEY_LLM_DEADLINE_S" in result.fallbacks_tried[1]["error"]
    assert seconds < 4.0 and "secondary" not in fake.models_called()


def test_two_pods_share_breaker_state_through_redis(settings_env):
    settings_env(HARVEY_BREAKER_FAILURES="2", HARVEY_BREAKER_OPEN_S="30")
    kvstore.reset()
    name = f"test:{uuid.uuid4().hex}"
    pod_a, pod_b = breaker.Breaker(name), breaker.Breaker(name)
    pod_a.failure()
    assert pod_b.allow()
    pod_b.failure()  # the second consecutive failure, seen by a different process state
    assert not pod_a.allow() and not pod_b.allow()
    assert pod_a.state() == breaker.CLOSED, "pod A's own memory saw one failure: the decision came from Redis"
    keys = kvstore.client().keys(f"harvey:breaker:{name}:*")
    assert keys and all(kvstore.client().pttl(k) > 0 for k in keys)


def test_exactly_one_pod_probes_after_the_cool_down(settings_env):
    settings_env(HARVEY_BREAKER_FAILURES="1", HARVEY_BREAKER_OPEN_S="0.5")
    kvstore.reset()
    name = f"test:{uuid.uuid4().hex}"
    pods = [breaker.Breaker(name) for _ in range(4)]
    pods[0].failure()
    assert not any(p.allow() for p in pods)
    time.sleep(0.7)
    assert [p.allow() for p in pods].count(True) == 1
    pods[2].success()
    assert all(p.allow() for p in pods)


def test_model_breaker_works_per_process_when_redis_is_dead(private_redis, settings_env):
    settings_env(HARVEY_BREAKER_FAILURES="1", HARVEY_BREAKER_OPEN_S="30")
    private_redis.kill()
    pod = breaker.Breaker(f"test:{uuid.uuid4().hex}")
    assert pod.allow()
    pod.failure()
    assert not pod.allow()
    kvstore.reset()
    pod.success()
    assert pod.allow()


def test_a_hung_redis_costs_one_timeout_per_cool_down_not_per_request(private_redis, settings_env):
    settings_env(HARVEY_BREAKER_OPEN_S="1")
    tenant = str(uuid.uuid4())
    cache.put(tenant, "v1", "q", 5, [{"x": 1}])
    assert cache.get(tenant, "v1", "q", 5) == [{"x": 1}]
    private_redis.hang()
    started = time.perf_counter()
    assert cache.get(tenant, "v1", "q", 5) is None  # pays the 0.5 s socket timeout once, raises nothing
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(20):  # as many requests, each a cache read and write and a model breaker check
        assert cache.get(tenant, "v1", "q", 5) is None
        cache.put(tenant, "v1", "q", 5, [{"x": 2}])
        breaker.Breaker(f"test:{tenant}").allow()
    rest = time.perf_counter() - started
    assert 0.3 < first < 2.0 and rest < 0.25
    assert kvstore.BREAKER.state() == breaker.OPEN
    private_redis.resume()
    time.sleep(1.2)
    assert cache.get(tenant, "v1", "q", 5) == [{"x": 1}]  # the probe finds Redis back
    assert kvstore.BREAKER.state() == breaker.CLOSED


def test_request_deadline_is_below_the_generate_service_timeout():
    from harvey.config import Settings

    service = yaml.safe_load((ROOT / "knative" / "base" / "generate.yaml").read_text())
    timeout_s = service["spec"]["template"]["spec"]["timeoutSeconds"]
    config = yaml.safe_load((ROOT / "knative" / "base" / "config.yaml").read_text())["data"]
    deadline = float(config.get("HARVEY_LLM_DEADLINE_S", Settings.model_fields["llm_deadline_s"].default))
    assert deadline + 60 <= timeout_s, "retrieval, checks and the audit write need time after the models"
