"""The faithfulness judge over loopback: its verdict decides `supported`, the screen's is kept, personal
data is pseudonymised on the way out, and malformed answers or timeouts fall back to the screen visibly."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from harvey.drafting.judge import Judging, from_settings
from harvey.evaluation.faithfulness import command
from harvey.faithfulness import assess

from tests.support.fake_openai import FakeOpenAI
from tests.unit.test_faithfulness import ART_7, ART_335

SOURCES = {1: ART_335, 2: ART_7}
# the screen passes the first; the fake judge, which checks every word against the cited text, does not
DRAFT = (
    "O réu poderá oferecer contestação no prazo de quinze dias úteis [1].\n\n"
    "O advogado poderá exercer a profissão no prazo de 15 dias [1, 2].\n"
)
PAIRS = Path(__file__).parents[1] / "fixtures" / "faithfulness" / "pairs.jsonl"


@pytest.fixture
def judge_server(settings_env):
    with FakeOpenAI(slow_seconds=4) as server:
        settings_env(
            HARVEY_LLM_API_BASE=server.url,
            HARVEY_LLM_TIMEOUT_S="1",
            HARVEY_LLM_RETRIES="0",
            OPENAI_API_KEY="sk-test",
            HARVEY_JUDGE_DEADLINE_S="10",
        )
        yield server


def test_the_judge_verdict_decides_and_the_screen_verdict_is_kept(judge_server):
    report = assess(DRAFT, SOURCES, Judging("openai/judge"))
    extra_word, spread = report["sentences"]
    assert extra_word["screen"] is True
    assert extra_word["judge"]["supported"] is False and "uteis" in extra_word["judge"]["reason"].replace("ú", "u")
    assert extra_word["supported"] is False
    assert spread["judge"]["supported"] is True and spread["supported"] is True
    assert report["judge"] == {"model": "openai/judge", "answered": 2, "failed": 0}
    assert report["unsupported"] == 1
    prompt = judge_server.requests[-1]["messages"][-1]["content"]
    assert ART_7 in prompt and "AFIRMAÇÃO:\nO advogado poderá exercer" in prompt and "[1, 2]" not in prompt


def test_harvey_judge_model_setting_turns_the_judge_on(judge_server, settings_env):
    settings_env(HARVEY_JUDGE_MODEL="openai/judge")
    report = assess(DRAFT, SOURCES, from_settings())
    assert report["judge"]["answered"] == 2
    assert judge_server.models_called() == ["judge", "judge"]


def test_a_malformed_answer_keeps_the_screen_verdict_and_says_so(judge_server):
    report = assess(DRAFT, SOURCES, Judging("openai/judge-garbled"))
    for sentence in report["sentences"]:
        assert sentence["supported"] == sentence["screen"]
        assert sentence["judge"]["fallback"] == "screen" and "malformed verdict" in sentence["judge"]["error"]
    assert report["judge"] == {"model": "openai/judge-garbled", "answered": 0, "failed": 2}


def test_a_judge_that_times_out_costs_one_timeout_per_report(judge_server):
    started = time.monotonic()
    report = assess(DRAFT, SOURCES, Judging("openai/slow-judge"))
    assert time.monotonic() - started < 3.5
    assert judge_server.models_called() == ["slow-judge"]  # the second sentence is not sent after the timeout
    assert [s["supported"] for s in report["sentences"]] == [s["screen"] for s in report["sentences"]]
    assert all(s["judge"]["fallback"] == "screen" for s in report["sentences"])
    assert report["judge"]["failed"] == 2


def test_personal_data_is_pseudonymised_before_it_reaches_the_judge(judge_server):
    source = "O contrato foi assinado por João Carlos da Silva, CPF 123.456.789-09, em São Paulo."
    claim = "João Carlos da Silva, CPF 123.456.789-09, assinou o contrato em São Paulo [1]."
    report = assess(claim, {1: source}, Judging("openai/judge"))
    sent = json.dumps(judge_server.requests[-1], ensure_ascii=False)
    assert "123.456.789-09" not in sent and "João Carlos" not in sent
    assert report["judge"]["answered"] == 1


def test_eval_faithfulness_runs_the_same_pairs_through_the_judge(judge_server):
    result = CliRunner().invoke(command, ["--pairs", str(PAIRS), "--judge", "openai/judge", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    judged = report["judge"]
    assert judged["model"] == "openai/judge" and judged["answered"] == 8 and judged["failed"] == 0
    assert 0.0 <= judged["auc"] <= 1.0
    assert report["auc"] == 1.0  # the screen's own numbers are still there
    table = CliRunner().invoke(command, ["--pairs", str(PAIRS), "--judge", "openai/judge-garbled"])
    assert "failed 8 (screen verdict kept)" in table.output
