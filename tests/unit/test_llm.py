"""The litellm path to real providers, over HTTP on loopback, and the offline model."""

from __future__ import annotations

import pytest
from harvey.drafting import llm, prompts

from tests.support.fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai(settings_env):
    with FakeOpenAI(slow_seconds=4) as server:
        settings_env(
            HARVEY_LLM_API_BASE=server.url, HARVEY_LLM_TIMEOUT_S="1", HARVEY_LLM_RETRIES="0", OPENAI_API_KEY="sk-test"
        )
        yield server


def _messages(text: str = "Redija com base nas fontes.") -> list[dict[str, str]]:
    return [{"role": "system", "content": "sistema"}, {"role": "user", "content": text}]


def test_first_model_answers(fake_openai):
    result = llm.complete(_messages(), ["openai/good-model", "harvey/extractive"])
    assert result.model == "openai/good-model"
    assert result.fallbacks_tried == []
    assert result.tokens_input == 120 and result.tokens_output == 60
    assert "[1]" in result.text
    assert fake_openai.models_called() == ["good-model"]


def test_timeout_falls_through_to_the_next_model(fake_openai):
    result = llm.complete(_messages(), ["openai/slow-model", "openai/good-model"])
    assert result.model == "openai/good-model"
    assert [a["model"] for a in result.fallbacks_tried] == ["openai/slow-model"]
    assert "Timeout" in result.fallbacks_tried[0]["error"] or "timed out" in result.fallbacks_tried[0]["error"].lower()


def test_5xx_and_429_fall_through(fake_openai):
    result = llm.complete(_messages(), ["openai/broken-model", "openai/limited-model", "openai/good-model"])
    assert result.model == "openai/good-model"
    assert [a["model"] for a in result.fallbacks_tried] == ["openai/broken-model", "openai/limited-model"]


def test_all_failing_raises_with_every_attempt(fake_openai):
    with pytest.raises(llm.AllModelsFailed) as caught:
        llm.complete(_messages(), ["openai/broken-a", "openai/broken-b"])
    assert [a["model"] for a in caught.value.attempts] == ["openai/broken-a", "openai/broken-b"]
    assert "every model in the fallback chain failed" in str(caught.value)


def test_personal_data_never_leaves_for_an_external_model(fake_openai):
    text = "Cliente João Carlos da Silva, CPF 123.456.789-09, e-mail joao.silva@example.com, pede indenização."
    result = llm.complete(_messages(text), ["openai/good-model"])
    sent = str(fake_openai.requests[-1]["messages"])
    for value in ("123.456.789-09", "joao.silva@example.com"):
        assert value not in sent
    assert "CPF_" in sent or "[CPF" in sent
    assert "PESSOA_1" not in result.text  # tokens are restored in the answer


def test_offline_model_drafts_only_from_the_sources():
    request = prompts.DraftRequest(
        doc_type="parecer",
        area="consumidor",
        task="Prazo para reclamar de vício de produto durável",
        sources=[
            prompts.Source(
                1,
                "CDC, art. 26",
                "Código de Defesa do Consumidor",
                "Art. 26. O direito de reclamar pelos vícios aparentes ou de fácil constatação "
                "caduca em: I - trinta dias, tratando-se de fornecimento de serviço e de produtos "
                "não duráveis; II - noventa dias, tratando-se de fornecimento de serviço e de "
                "produtos duráveis.",
            )
        ],
    )
    result = llm.complete(prompts.draft_messages(request), ["harvey/extractive"])
    assert result.model == "harvey/extractive"
    for section in prompts.SECTIONS["parecer"]:
        assert f"## {section}" in result.text
    assert "noventa dias" in result.text.lower() and "[1]" in result.text
    assert "[2]" not in result.text
    assert result.text == llm.complete(prompts.draft_messages(request), ["harvey/extractive"]).text
