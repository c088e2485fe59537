"""Vigência read from the compilations' markers, on real provisions (tests/fixtures/vigencia)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harvey.drafting import references
from harvey.search import vigencia
from harvey.search.chunking import chunk_document

FIXTURES = Path(__file__).parents[1] / "fixtures" / "vigencia" / "articles.jsonl"


@pytest.fixture(scope="module")
def articles() -> dict[str, dict]:
    rows = [json.loads(line) for line in FIXTURES.read_text(encoding="utf-8").splitlines()]
    return {row["id"]: row for row in rows}


def _chunks(row: dict):
    return chunk_document(row["id"], row["text"], metadata={"law": row["law"], "article": row["article"]})


def test_revoked_incisos_of_cc_art_3_never_reach_a_chunk_and_the_rewording_is_recorded(articles):
    (chunk,) = _chunks(articles["CC:art3"])
    assert "(Revogado)" not in chunk.text and "\nI -" not in chunk.text
    assert (
        chunk.text.startswith("Art. 3 São absolutamente incapazes") and "menores de 16 (dezesseis) anos" in chunk.text
    )
    assert chunk.metadata["vigencia"]["status"] == vigencia.ALTERADA
    assert [a["ato"] for a in chunk.metadata["vigencia"]["atos"]] == ["Lei nº 13.146/2015"]


def test_cc_art_4_keeps_every_inciso_in_force_and_names_the_reworded_ones(articles):
    (chunk,) = _chunks(articles["CC:art4"])
    assert "IV - os pródigos." in chunk.text and "ébrios habituais" in chunk.text
    (act,) = chunk.metadata["vigencia"]["atos"]
    assert act == {
        "tipo": "redacao",
        "ato": "Lei nº 13.146/2015",
        "dispositivos": ["caput", "inc. II", "inc. III", "parágrafo único"],
    }


def test_cc_art_1790_is_questioned_by_both_extraordinary_appeals(articles):
    (chunk,) = _chunks(articles["CC:art1790"])
    found = chunk.metadata["vigencia"]
    assert found["status"] == vigencia.QUESTIONADA
    assert [a["ato"] for a in found["atos"]] == ["RE 646.721", "RE 878.694"]


def test_clt_art_59_drops_the_revoked_paragraph_and_records_each_amending_act(articles):
    chunks = _chunks(articles["CLT:art59"])
    text = "\n".join(c.text for c in chunks)
    assert "§ 4º" not in text and "Revogado" not in text
    assert "§ 5º O banco de horas" in text and "§ 6o É lícito" in text
    acts = {(a["tipo"], a["ato"]) for c in chunks for a in c.metadata["vigencia"]["atos"]}
    assert acts == {
        ("redacao", "Lei nº 13.467/2017"),
        ("redacao", "Medida Provisória nº 2.164-41/2001"),
        ("inclusao", "Lei nº 13.467/2017"),
    }


def test_vetoed_inciso_of_cdc_art_26_is_left_out_and_the_rest_stays_in_force(articles):
    (chunk,) = _chunks(articles["CDC:art26"])
    assert "Vetado" not in chunk.text and "\nII - (" not in chunk.text
    assert "II - noventa dias" in chunk.text and "III - a instauração de inquérito civil" in chunk.text
    assert chunk.metadata["vigencia"] == {"status": vigencia.VIGENTE, "atos": []}
    assert vigencia.parse(articles["CDC:art26"]["text"]).removed == ("§ 2º, inc. II",)


def test_a_superseded_wording_gives_way_to_the_one_in_force():
    text = (
        "Art. 10. Texto do caput.\n§ 1º Prazo de dez dias.\n"
        "§ 1º Prazo de quinze dias. (Redação dada pela Lei nº 14.000, de 2020)\n§ 2º Outro parágrafo."
    )
    provision = vigencia.parse(text)
    assert "dez dias" not in provision.text and "quinze dias" in provision.text
    assert provision.removed == ("§ 1º (redação anterior)",)


def test_a_wholly_revoked_article_yields_no_chunk():
    text = (
        "Art. 43. A denúncia será rejeitada quando: (Revogado pela Lei nº 11.719, de 2008).\nI - o fato não for crime;"
    )
    assert chunk_document("CPP:art43", text, metadata={"law": "CPP"}) == []


def test_abnt_reference_says_which_law_gave_the_wording_and_which_appeal_questions_it(articles):
    (art3,) = _chunks(articles["CC:art3"])
    row = {
        "n": 1,
        "label": art3.label,
        "title": art3.title,
        "source_id": art3.document_id,
        "metadata": art3.metadata,
        **vigencia.citation_fields(art3.text, art3.metadata),
    }
    assert references.reference(row).startswith("[1] CC, art. 3º, com redação dada pela Lei nº 13.146/2015. BRASIL.")
    (art1790,) = _chunks(articles["CC:art1790"])
    row = {**row, "n": 2, "label": art1790.label, **vigencia.citation_fields(art1790.text, art1790.metadata)}
    assert "(questionado no STF: RE 646.721; RE 878.694)" in references.reference(row)


def test_chunks_indexed_without_recorded_vigencia_are_read_from_their_text(articles):
    row = articles["CC:art1790"]
    fields = vigencia.citation_fields(row["text"], {"law": "CC", "article": "1790"})
    assert fields["vigencia"] == vigencia.QUESTIONADA
    assert vigencia.citation_fields("Memorando interno.", {}) == {"vigencia": None, "vigencia_atos": []}


def test_a_sentence_grounded_on_a_questioned_provision_is_flagged():
    report = {"sentences": [{"text": "a", "citations": [1], "flags": []}, {"text": "b", "citations": [2], "flags": []}]}
    flagged = vigencia.flag_questioned(report, {1: vigencia.QUESTIONADA, 2: vigencia.ALTERADA})
    assert [s["flags"] for s in flagged["sentences"]] == [[vigencia.FLAG], []]


def test_act_names_are_normalised():
    assert vigencia.act_name("Lei n 13874, de 2019") == "Lei nº 13.874/2019"
    assert vigencia.act_name("Decreto-lei nº 229, de 28.2.1967") == "Decreto-Lei nº 229/1967"
    assert vigencia.act_name("Emenda Constitucional n 45, de 2004") == "Emenda Constitucional nº 45/2004"
