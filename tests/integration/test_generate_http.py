"""The generate function as a client sees it: served by functions-framework's own app."""

from __future__ import annotations

import json

import pytest
from harvey.store import audit, db, tenants

from tests.support.fake_openai import FakeOpenAI

VALID = {
    "doc_type": "peticao_inicial",
    "task": "Ação de indenização por falha na prestação de serviço bancário com inversão do ônus da prova",
    "facts": "O autor, CPF 123.456.789-09, foi cobrado por tarifa não contratada e teve o nome negativado.",
    "parties": {"autor": "Carlos Alberto Pereira", "réu": "Banco Exemplo S.A."},
}


@pytest.fixture(scope="module")
def client():
    from functions_framework import create_app

    app = create_app("generate", "functions/generate/main.py")
    return app.test_client()


def _post(client, key: str | None, body, **headers):
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post("/", data=data, headers=headers, content_type="application/json")


def _audit_count(tenant_id: str) -> int:
    return db.one("SELECT count(*) AS n FROM run_audit WHERE tenant_id = CAST(:t AS uuid)", t=tenant_id)["n"]


def _audited_runs(tenant_id: str) -> set[str]:
    rows = db.query("SELECT run_id FROM run_audit WHERE tenant_id = CAST(:t AS uuid)", t=tenant_id)
    return {str(r["run_id"]) for r in rows}


def test_healthz_and_metrics_need_no_key(client):
    health = client.get("/healthz")
    body = health.get_json()
    assert health.status_code == 200 and body["status"] == "ok" and body["function"] == "generate"
    assert body["warm_up"] in {"running", "done"}  # the warm-up's progress is process-wide
    deep = client.get("/healthz?deep=1")
    assert deep.get_json()["checks"] == {"postgres": "ok", "qdrant": "ok"}
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and b"http_requests_total" in metrics.data


def test_generate_returns_a_cited_draft_and_one_audit_row(client, indexed_tenant):
    tenant, key = indexed_tenant
    before = _audited_runs(tenant.id)
    response = _post(client, key, VALID)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    for field in (
        "run_id",
        "document_md",
        "citations",
        "sources_used",
        "faithfulness_report",
        "quality",
        "pii_report",
        "model_used",
        "fallbacks_tried",
        "timings_ms",
    ):
        assert field in body
    assert body["model_used"] == "harvey/extractive"
    assert body["citations"], "the draft cites at least one source"
    indexed = {
        d["document_id"]
        for d in db.query("SELECT document_id FROM documents WHERE tenant_id = CAST(:t AS uuid)", t=tenant.id)
    }
    for citation in body["citations"]:
        assert f"[{citation['n']}]" in body["document_md"]
        assert citation["source_id"] in indexed
        assert citation["excerpt"].split(" …")[0][:40] in _document_text(tenant.id, citation["source_id"])
    assert "## Referências" in body["document_md"] and "BRASIL." in body["document_md"]
    reported = " ".join(s["text"] for s in body["faithfulness_report"]["sentences"])
    assert "tarifa não contratada" not in reported  # the client's facts are not claims about the sources
    assert any(s["citations"] and s["supported"] for s in body["faithfulness_report"]["sentences"])
    assert body["pii_report"]["input"]["by_type"].get("CPF") == 1
    assert "123.456.789-09" not in json.dumps(body["pii_report"])
    row = audit.get(tenant.id, body["run_id"])
    assert row["success"] is True
    assert row["output_hash"] == audit.sha256_text(body["document_md"])
    assert "123.456.789-09" not in json.dumps(row, default=str)
    assert _audited_runs(tenant.id) - before == {body["run_id"]}
    assert {s["step"] for s in row["agent_trace"]} >= {"analyze", "retrieve", "draft", "critique", "format"}


def _document_text(tenant_id: str, document_id: str) -> str:
    from harvey.search.ingest import read_path

    from tests.conftest import DEMO_CORPUS

    doc = next(d for d in read_path(DEMO_CORPUS / "legislacao.jsonl") if d.document_id == document_id)
    return " ".join(doc.text.split())


def test_tenant_b_never_sees_tenant_a_documents(client, indexed_tenant, make_tenant):
    _, _ = indexed_tenant
    other, other_key = make_tenant("empty")
    response = _post(client, other_key, VALID)
    assert response.status_code == 422
    assert "ingest" in response.get_json()["error"]["message"]
    assert _audit_count(other.id) == 1  # failed runs are audited too


@pytest.mark.parametrize(
    ("headers_key", "status"),
    [(None, 401), ("hv_not-a-real-key", 401), ("Basic abc", 401)],
)
def test_missing_or_unknown_key_is_401(client, headers_key, status):
    headers = {}
    if headers_key == "Basic abc":
        headers["Authorization"] = headers_key
        response = client.post("/", data=json.dumps(VALID), headers=headers, content_type="application/json")
    else:
        response = _post(client, headers_key, VALID)
    assert response.status_code == status
    assert "key" in response.get_json()["error"]["message"].lower()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        ({"doc_type": "peticao_inicial"}, "task"),
        ({**VALID, "doc_type": "memorando"}, "doc_type"),
        ({**VALID, "top_k": "5"}, "top_k"),
        ({**VALID, "top_k": 0}, "top_k"),
        ({**VALID, "parties": ["a"]}, "parties"),
        ({**VALID, "tsk": "typo"}, "tsk"),
    ],
)
def test_bad_input_is_400_naming_the_field(client, indexed_tenant, body, field):
    tenant, key = indexed_tenant
    before = _audit_count(tenant.id)
    response = _post(client, key, body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["field"] == field and field in error["message"]
    assert _audit_count(tenant.id) == before  # rejected before any run starts


def test_oversized_body_is_413(client, indexed_tenant):
    _, key = indexed_tenant
    response = _post(client, key, {**VALID, "facts": "x" * 70_000})
    assert response.status_code == 413
    assert "limit" in response.get_json()["error"]["message"]


def test_unknown_route_and_method(client):
    assert client.get("/nowhere").status_code == 404
    assert client.get("/").status_code == 405


def test_all_models_failing_is_503_with_a_failed_audit_row(client, indexed_tenant, settings_env):
    tenant, key = indexed_tenant
    with FakeOpenAI() as server:
        settings_env(
            HARVEY_LLM_MODELS="openai/broken-a,openai/broken-b",
            HARVEY_LLM_API_BASE=server.url,
            OPENAI_API_KEY="sk-test",
        )
        response = _post(client, key, VALID)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    body = response.get_json()
    assert "no language model is available" in body["error"]["message"]
    row = audit.get(tenant.id, body["run_id"])
    assert row["success"] is False and "broken-b" in row["error_message"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_external_model_draft_never_shows_an_invented_source(client, indexed_tenant, settings_env):
    tenant, key = indexed_tenant
    with FakeOpenAI() as server:
        settings_env(
            HARVEY_LLM_MODELS="openai/good-model,harvey/extractive",
            HARVEY_LLM_API_BASE=server.url,
            OPENAI_API_KEY="sk-test",
            HARVEY_TOP_K="3",
        )
        response = _post(client, key, VALID)
        sent = json.dumps(server.requests)
    body = response.get_json()
    assert response.status_code == 200 and body["model_used"] == "openai/good-model"
    assert "[7]" not in body["document_md"]  # the fake cites a source that was never retrieved
    assert [c["n"] for c in body["citations"]] == [1]
    assert "123.456.789-09" not in sent and "Carlos Alberto Pereira" not in sent
    assert body["revisions"] >= 1


def test_force_fallback_and_logs_only_flags(client, indexed_tenant, settings_env):
    tenant, key = indexed_tenant
    settings_env(HARVEY_LLM_MODELS="openai/never-called,harvey/extractive")
    tenants.set_flags(tenant.name, force_fallback=True, logs_only=True)
    try:
        response = _post(client, key, VALID)
    finally:
        tenants.set_flags(tenant.name, force_fallback=False, logs_only=False)
    body = response.get_json()
    assert response.status_code == 200
    assert body["model_used"] == "harvey/extractive" and body["fallbacks_tried"] == []
    assert body["status"] == "withheld" and body["document_md"] is None
    assert audit.get(tenant.id, body["run_id"])["output_hash"]  # generated and audited all the same


def test_postgres_unreachable_is_503_with_retry_after(client, indexed_tenant, settings_env):
    _, key = indexed_tenant
    settings_env(DATABASE_URL="postgresql://postgres@127.0.0.1:1/test")
    db.reset()
    try:
        response = _post(client, key, VALID)
    finally:
        settings_env()
    db.reset()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "10"
    assert "database is unreachable" in response.get_json()["error"]["message"]


def test_qdrant_unreachable_is_503_and_audited(client, indexed_tenant, settings_env, monkeypatch):
    from harvey.config import get_settings
    from harvey.search import retrieval

    tenant, key = indexed_tenant
    settings_env(QDRANT_URL="http://127.0.0.1:1")
    monkeypatch.setattr(retrieval, "_index", None)
    response = _post(client, key, VALID)
    monkeypatch.undo()
    get_settings.cache_clear()
    assert response.status_code == 503
    body = response.get_json()
    assert "index is unreachable" in body["error"]["message"] and response.headers["Retry-After"]
    assert audit.get(tenant.id, body["run_id"])["success"] is False
