"""The critique scores drafts that can fail: seeded bad drafts against real CDC provisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harvey import faithfulness
from harvey.drafting import extractive, prompts
from harvey.drafting.critique import score_quality
from harvey.schemas import GenerateRequest

ROOT = Path(__file__).parents[1]
TASK = "Prazo para reclamar de vício de produto durável"
ART26_ANSWER = (
    "O direito de reclamar pelos vícios aparentes ou de fácil constatação caduca em noventa dias, "
    "tratando-se de fornecimento de serviço e de produtos duráveis."
)


@pytest.fixture(scope="module")
def law() -> dict[str, str]:
    rows = [json.loads(line) for line in (ROOT / "fixtures" / "vigencia" / "articles.jsonl").read_text().splitlines()]
    return {row["id"]: row["text"] for row in rows}


def _parecer(grounds: list[str], conclusion: list[str], relatorio: str = f"Trata-se de consulta sobre: {TASK}.") -> str:
    return (
        f"# PARECER\n\n## Ementa\n\n{TASK}. Análise à luz da legislação citada.\n\n## Relatório\n\n{relatorio}\n\n"
        f"## Fundamentação\n\n" + "\n\n".join(grounds) + "\n\n## Conclusão\n\n" + "\n\n".join(conclusion) + "\n"
    )


def _score(draft: str, sources: dict[int, str], scores: list[float], task: str = TASK, doc_type: str = "parecer"):
    report = faithfulness.assess(prompts.claim_sections(draft), sources)
    hits = [prompts.Source(n, f"fonte {n}", "t", sources.get(n, ""), score=s) for n, s in enumerate(scores, 1)]
    return score_quality(GenerateRequest(doc_type=doc_type, task=task), draft, report, hits)


def _good_grounds() -> list[str]:
    return [
        "Conforme o CDC, art. 26: Noventa dias, tratando-se de fornecimento de serviço e de produtos duráveis. [1]",
        "Conforme o CDC, art. 26: Tratando-se de vício oculto, o prazo decadencial inicia-se no momento em que "
        "ficar evidenciado o defeito. [1]",
    ]


def test_the_demo_parecer_with_a_fixed_verdict_is_not_excellent_even_if_every_ground_were_supported():
    draft = (ROOT / "fixtures" / "critique" / "demo_parecer_before.md").read_text(encoding="utf-8")
    task = (
        "Parecer sobre a responsabilidade do fornecedor por vício do produto durável e o prazo decadencial "
        "para o consumidor reclamar"
    )
    sentences = faithfulness.assess(prompts.claim_sections(draft), {n: "x" for n in range(1, 9)})["sentences"]
    report = {"sentences": [{**s, "supported": bool(s["citations"])} for s in sentences]}
    hits = [prompts.Source(n, f"fonte {n}", "t", "", score=1.0) for n in range(1, 9)]
    quality = score_quality(GenerateRequest(doc_type="parecer", task=task), draft, report, hits)
    assert quality["verdict"] == "needs_review"
    assert any("Conclusão" in b for b in quality["blockers"])
    assert quality["template_only_sections"] == ["Ementa"]
    assert quality["estrutura"] < 1.0


def test_a_parecer_whose_conclusion_quotes_its_ground_can_be_approved(law):
    draft = _parecer(
        _good_grounds(), ["Diante da fundamentação exposta, responde-se à consulta:", f"{ART26_ANSWER} [1]"]
    )
    quality = _score(draft, {1: law["CDC:art26"]}, [0.9])
    assert quality["blockers"] == []
    assert quality["verdict"] in ("approved", "excellent")
    assert quality["completude"] >= 0.7  # "prazo" is answered in the grounds, not in the conclusion


def test_task_terms_restated_only_in_the_relatorio_do_not_count_as_an_answer(law):
    grounds = ["Conforme o CDC, art. 26: A instauração de inquérito civil, até seu encerramento. [1]"]
    conclusion = ["Conforme o CDC, art. 26: A instauração de inquérito civil, até seu encerramento. [1]"]
    draft = _parecer(grounds, conclusion, relatorio=f"Trata-se de consulta sobre: {TASK}. O {TASK.lower()} importa.")
    quality = _score(draft, {1: law["CDC:art26"]}, [0.9])
    assert quality["completude"] == 0.0
    assert set(quality["unanswered_terms"]) >= {"prazo", "reclamar", "durável"}


def test_one_off_topic_ground_is_named_and_lowers_the_grounding_score(law):
    conclusion = [f"{ART26_ANSWER} [1]"]
    clean = _score(_parecer(_good_grounds(), conclusion), {1: law["CDC:art26"]}, [0.9])
    off_topic_ground = (
        "Conforme a CLT, art. 59: A remuneração da hora extra será, pelo menos, 50% superior à da hora normal. [2]"
    )
    mixed = _score(
        _parecer([*_good_grounds(), off_topic_ground], conclusion),
        {1: law["CDC:art26"], 2: law["CLT:art59"]},
        [0.9, 0.2],
    )
    assert mixed["off_topic_citations"] == [2]
    assert mixed["fundamentacao"] < clean["fundamentacao"]


def test_a_draft_grounded_only_off_topic_cannot_be_approved(law):
    ground = "Conforme a CLT, art. 59: A remuneração da hora extra será, pelo menos, 50% superior à da hora normal. [2]"
    draft = _parecer([ground], [f"{ART26_ANSWER} [1]"])
    quality = _score(draft, {1: law["CDC:art26"], 2: law["CLT:art59"]}, [0.9, 0.2])
    assert quality["off_topic_citations"] == [2]
    assert quality["verdict"] == "needs_review"


def test_a_conclusion_that_contradicts_its_grounds_cannot_be_approved(law):
    contradiction = (
        "O direito de reclamar pelos vícios aparentes de produtos duráveis não caduca em noventa dias, "
        "podendo ser exercido a qualquer tempo. [1]"
    )
    quality = _score(_parecer(_good_grounds(), [contradiction]), {1: law["CDC:art26"]}, [0.9])
    assert quality["verdict"] == "needs_review"
    assert any("nega o que dizem as fontes [1]" in b for b in quality["blockers"])


def test_pedidos_that_name_no_supported_ground_hold_a_peticao_back(law):
    direito = (
        "Conforme o CDC, art. 26: Noventa dias, tratando-se de fornecimento de serviço e de produtos duráveis. [1]"
    )

    def peticao(intro: str) -> str:
        return (
            "# PETICAO\n\n## Endereçamento\n\nEXCELENTÍSSIMO JUIZ\n\n## Do Direito\n\n"
            f"{direito}\n\n## Dos Pedidos\n\n{intro}\n\na) a condenação do réu a reparar o vício do produto durável;\n"
        )

    sources, scores = {1: law["CDC:art26"]}, [0.9]
    report_without = faithfulness.assess(prompts.claim_sections(peticao("Diante do exposto, requer:")), sources)
    hits = [prompts.Source(1, "CDC, art. 26", "t", "", score=scores[0])]
    job = GenerateRequest(doc_type="peticao_inicial", task=TASK)
    held = score_quality(job, peticao("Diante do exposto, requer:"), report_without, hits)
    assert any("Pedidos" in b for b in held["blockers"]) and held["verdict"] == "needs_review"
    named = peticao("Diante do exposto, com fundamento no art. 26 do CDC, requer:")
    free = score_quality(job, named, faithfulness.assess(prompts.claim_sections(named), sources), hits)
    assert not any("Pedidos" in b for b in free["blockers"])


def _request(law: dict[str, str], *ids: str, task: str = TASK) -> prompts.DraftRequest:
    sources = [prompts.Source(n, f"fonte {n}", "t", law[i]) for n, i in enumerate(ids, 1)]
    return prompts.DraftRequest("parecer", "consumidor", task, sources=sources)


def test_offline_conclusion_answers_from_the_cited_provision_with_its_number(law):
    draft = extractive.draft(_request(law, "CDC:art26", "CLT:art59"))
    conclusion = draft.split("## Conclusão", 1)[1]
    assert f"{ART26_ANSWER} [1]" in conclusion
    assert "viabilidade jurídica" not in conclusion and "[2]" not in conclusion
    report = faithfulness.assess(prompts.claim_sections(draft), {1: law["CDC:art26"], 2: law["CLT:art59"]})
    answer = next(s for s in report["sentences"] if s["text"].startswith("O direito de reclamar"))
    assert answer["supported"]


def test_offline_conclusion_says_when_the_sources_do_not_answer(law):
    draft = extractive.draft(_request(law, "CLT:art59", task="Prazo para reclamar de vício de produto durável"))
    assert extractive.NO_ANSWER in draft.split("## Conclusão", 1)[1]
    quality = _score(draft, {1: law["CLT:art59"]}, [0.9])
    assert quality["verdict"] == "needs_review"


@pytest.mark.parametrize(
    ("text", "area"),
    [
        ("Cobrança indevida de tarifa bancária ao consumidor pelo fornecedor", "consumidor"),
        ("Horas extras e rescisão do contrato de trabalho do empregado (CLT)", "trabalhista"),
        ("Mandado de segurança contra ato que viola direito fundamental", "constitucional"),
        ("Crime de furto: dosimetria da pena", "penal"),
        ("Restituição de ICMS pago a maior ao fisco estadual", "tributário"),
        ("Indenização por dano em acidente de trânsito", "civil"),
        ("Texto sem palavra de área alguma", "civil"),
    ],
)
def test_the_area_is_the_one_whose_cue_words_the_task_uses_most(text, area):
    from harvey.drafting.critique import classify_area

    assert classify_area(text) == area
