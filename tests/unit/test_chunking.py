"""Chunking of real statute shapes (fixtures copied from ../shared/corpus/br-legal/articles.jsonl)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from harvey.search.chunking import MAX_CHARS, chunk_document, format_article

FIXTURES = Path(__file__).parents[1] / "fixtures" / "retrieval"


@pytest.fixture(scope="module")
def articles() -> dict[str, dict]:
    rows = [json.loads(line) for line in (FIXTURES / "articles.jsonl").read_text(encoding="utf-8").splitlines()]
    return {row["id"]: row for row in rows}


def _chunks(row: dict):
    meta = {k: row[k] for k in ("law", "article", "source_file")}
    return chunk_document(row["id"], row["text"], metadata=meta)


def test_short_article_is_one_chunk_with_citation_label(articles):
    row = articles["CC:art186"]
    (chunk,) = _chunks(row)
    assert chunk.label == "CC, art. 186"
    assert chunk.title == "Código Civil (Lei 10.406/2002)"
    assert chunk.text == row["text"]
    assert chunk.document_id == "CC:art186" and chunk.position == 0
    assert chunk.metadata["law"] == "CC" and chunk.metadata["source_file"] == row["source_file"]


@pytest.mark.parametrize(
    ("doc_id", "label"),
    [("CF88:art1", "CF/88, art. 1º"), ("CDC:art14", "CDC, art. 14"), ("CC:art1228", "CC, art. 1.228,")],
)
def test_law_abbreviation_and_article_number_format(articles, doc_id, label):
    assert _chunks(articles[doc_id])[0].label.startswith(label)


def test_long_article_splits_at_incisos_and_paragraphs_keeping_the_caput(articles):
    row = articles["CC:art1358-J"]
    chunks = _chunks(row)
    assert len(chunks) > 1
    caput = row["text"].split("\n", 1)[0]
    assert all(c.text.startswith(caput) for c in chunks)
    assert all(len(c.text) <= MAX_CHARS for c in chunks)
    assert chunks[0].label.startswith("CC, art. 1.358-J, inc. I")
    assert any("§ 1º" in c.label for c in chunks)
    # every inciso and paragraph line in force lands in some chunk; vetoed ones in none
    for line in row["text"].split("\n")[1:]:
        in_force = "VETADO" not in line
        assert any(line.strip() in c.text for c in chunks) == in_force, line


def test_penal_article_labels_follow_its_paragraphs(articles):
    chunks = _chunks(articles["CP:art121"])
    labels = [c.label for c in chunks]
    assert labels[0].startswith("CP, art. 121")
    assert any(label.startswith("CP, art. 121, § 2º") for label in labels)
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_every_fixture_chunk_fits(articles):
    for row in articles.values():
        assert all(0 < len(c.text) <= MAX_CHARS for c in _chunks(row)), row["id"]


def test_chunk_ids_are_deterministic_uuids_that_follow_the_text(articles):
    row = articles["CDC:art18"]
    first, second = _chunks(row), _chunks(row)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in second]
    assert all(uuid.UUID(c.chunk_id).version == 5 for c in first)
    assert len({c.chunk_id for c in first}) == len(first)
    changed = chunk_document(row["id"], row["text"].replace("trinta dias", "quarenta dias"))
    assert {c.chunk_id for c in changed} != {c.chunk_id for c in first}


def test_law_file_with_many_articles_and_separators():
    text = (
        "LEI Nº 8.906, DE 4 DE JULHO DE 1994\n-----\n"
        "Art. 1º São atividades privativas de advocacia:\n"
        "I - a postulação a órgão do Poder Judiciário;\n-----\n"
        "Art. 2º O advogado é indispensável à administração da justiça.\n-----\n"
        "Art. 7º-A São direitos da advogada gestante.\n"
    )
    chunks = chunk_document("lei8906", text, metadata={"law": "L8906"})
    assert [c.label for c in chunks] == ["EAOAB, art. 1º", "EAOAB, art. 2º", "EAOAB, art. 7º-A"]
    assert chunks[0].text.startswith("LEI Nº 8.906")  # a short heading stays with the first article
    assert all("-----" not in c.text for c in chunks)
    assert chunks[2].metadata["article"] == "7º-A"


def test_separator_dash_is_not_an_article_letter():
    (chunk,) = chunk_document("CF88:art1", "Art. 1 - A República Federativa do Brasil é formada pela união.")
    assert chunk.label == "CF/88, art. 1º"
    (chunk,) = chunk_document("CED-OAB:art5", "Art. 5º O exercício da advocacia é incompatível com mercantilização.")
    assert chunk.label == "CED-OAB, art. 5º"


def test_prose_is_packed_by_paragraphs_and_labelled_by_title():
    paragraphs = [f"Parágrafo {i} do parecer sobre responsabilidade civil. " * 8 for i in range(12)]
    chunks = chunk_document("memo-1", "\n\n".join(paragraphs), title="Parecer 12/2025")
    assert 1 < len(chunks) < len(paragraphs)
    assert all(c.label == "Parecer 12/2025" and c.title == "Parecer 12/2025" for c in chunks)
    assert all(len(c.text) <= MAX_CHARS for c in chunks)
    assert "".join(c.text for c in chunks).count("Parágrafo") == sum(p.count("Parágrafo") for p in paragraphs)


def test_one_huge_paragraph_is_split_at_sentences():
    text = " ".join(f"Frase número {i} do contrato de locação." for i in range(200))
    chunks = chunk_document("contrato", text)
    assert len(chunks) > 1
    assert all(len(c.text) <= MAX_CHARS and c.text.endswith(".") for c in chunks)
    assert chunks[0].label == "contrato"


def test_empty_text_has_no_chunks():
    assert chunk_document("vazio", "  \n----- \n") == []


@pytest.mark.parametrize(
    ("number", "suffix", "expected"),
    [("5", None, "5º"), ("10", None, "10"), ("1358", "j", "1.358-J"), ("1.036", None, "1.036")],
)
def test_format_article(number, suffix, expected):
    assert format_article(number, suffix) == expected
