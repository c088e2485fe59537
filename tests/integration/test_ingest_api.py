"""The ingest function as a client sees it, on the real PostgreSQL and Qdrant Edge: upload, poll, draft
with what was uploaded, re-upload, replace, delete, tenant isolation, every bad file, and the event path.

Uploads are processed by the function's own worker threads in this process; `wait` polls
GET /documents/{id} as a client would. One upload (the scanned PDF) goes through OCR.
"""

from __future__ import annotations

import base64
import io
import time
import uuid
from pathlib import Path

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from harvey.ops import tasks
from harvey.store import audit, db

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "intake"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
TEXT = "text/plain; charset=utf-8"
MARKDOWN = "text/markdown"
FINAL = ("indexed", "failed", "deleted")


@pytest.fixture(scope="module")
def ingest_client():
    from functions_framework import create_app

    return create_app("ingest", "functions/ingest/main.py").test_client()


@pytest.fixture(scope="module")
def generate_client():
    from functions_framework import create_app

    return create_app("generate", "functions/generate/main.py").test_client()


def upload(client, key: str | None, data: bytes, content_type: str, document_id: str | None = None, **headers):
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if document_id:
        headers["X-Document-Id"] = document_id
    return client.post("/documents", data=data, headers={**headers, "Content-Type": content_type})


def wait(client, key: str, document_id: str, timeout_s: float = 30.0) -> dict:
    """Poll the document until its upload is done, as a client would."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(f"/documents/{document_id}", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        if body["status"] in FINAL or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def indexed(client, key: str, data: bytes, content_type: str, document_id: str, **headers) -> dict:
    response = upload(client, key, data, content_type, document_id, **headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    body = wait(client, key, document_id)
    assert body["status"] == "indexed", body
    return body


def search(tenant_id: str, query: str) -> list:
    from harvey.search.retrieval import open_index

    return open_index().search(tenant_id, query, 10)


def chunks_of(tenant_id: str) -> int:
    """Chunks the tenant has in the index (each test's tenant has only the documents it uploads)."""
    from harvey.search.retrieval import open_index

    return open_index().count(tenant_id)


def test_a_pdf_is_uploaded_indexed_and_cited_with_its_page(ingest_client, generate_client, make_tenant):
    tenant, key = make_tenant("ingest")
    data = (FIXTURES / "text.pdf").read_bytes()
    response = upload(
        ingest_client, key, data, PDF, "cdc-2-paginas", **{"X-Document-Title": "C%C3%B3digo do Consumidor"}
    )
    assert response.status_code == 202
    accepted = response.get_json()
    assert accepted["status"] == "queued" and accepted["location"] == "/documents/cdc-2-paginas"
    assert response.headers["Location"] == "/documents/cdc-2-paginas" and len(accepted["sha256"]) == 64
    body = wait(ingest_client, key, "cdc-2-paginas")
    assert body["status"] == "indexed", body
    assert (body["title"], body["pages"], body["ocr_pages"], body["parser"]) == (
        "Código do Consumidor",
        2,
        0,
        "pypdfium2",
    )
    assert body["bytes"] == len(data) and body["chunks"] >= 3 and body["error"] is None

    draft = generate_client.post(
        "/",
        json={
            "doc_type": "parecer",
            "task": "Direitos básicos do consumidor: proteção da vida, saúde e segurança "
            "contra os riscos de produtos e serviços perigosos",
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    assert draft.status_code == 200, draft.get_data(as_text=True)
    result = draft.get_json()
    cited = {c["label"]: c for c in result["citations"] if c["source_id"] == "cdc-2-paginas"}
    assert "Código do Consumidor, art. 6º" in cited, result["citations"]
    article_6 = cited["Código do Consumidor, art. 6º"]
    assert article_6["page"] == 2
    text = " ".join((FIXTURES / "text.expected.txt").read_text(encoding="utf-8").split())
    assert article_6["excerpt"].split(" …")[0][:60] in text
    reference = "art. 6º. CÓDIGO DO CONSUMIDOR. Acervo do escritório, documento cdc-2-paginas, p. 2."
    assert f"Código do Consumidor, {reference}" in result["document_md"]

    again = upload(ingest_client, key, data, PDF, "cdc-2-paginas", **{"X-Document-Title": "C%C3%B3digo do Consumidor"})
    assert again.status_code == 200 and again.get_json()["status"] == "unchanged"
    assert wait(ingest_client, key, "cdc-2-paginas")["updated_at"] == body["updated_at"]


def test_new_bytes_under_the_same_id_replace_the_old_chunks(ingest_client, make_tenant):
    tenant, key = make_tenant("ingest")
    old = "CLÁUSULA PRIMEIRA\n\nO locatário pagará o aluguel em moeda de ouro maciço até o quinto dia útil.\n"
    new = "CLÁUSULA PRIMEIRA\n\nO locatário pagará o aluguel por transferência bancária até o décimo dia útil.\n"
    first = indexed(ingest_client, key, old.encode(), TEXT, "contrato-locacao")
    held = upload(ingest_client, key, new.encode(), TEXT, "contrato-locacao", Prefer="wait=30")
    assert held.status_code == 200 and held.get_json()["status"] == "indexed"
    assert held.headers["Preference-Applied"] == "wait=30"
    second = wait(ingest_client, key, "contrato-locacao", timeout_s=0)
    assert second["sha256"] != first["sha256"] and second["chunks"] == chunks_of(tenant.id)
    texts = [hit.chunk.text for hit in search(tenant.id, "aluguel moeda de ouro maciço quinto dia útil")]
    assert texts and all("ouro" not in t for t in texts) and any("transferência bancária" in t for t in texts)


def test_a_deleted_document_leaves_the_index_and_is_audited(ingest_client, make_tenant):
    tenant, key = make_tenant("ingest")
    indexed(ingest_client, key, "Parecer interno sobre a prescrição quinquenal.".encode(), TEXT, "parecer-1")
    assert chunks_of(tenant.id) == 1
    response = ingest_client.delete("/documents/parecer-1", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    deleted = response.get_json()
    assert deleted["status"] == "deleted" and deleted["chunks_removed"] == 1
    assert audit.get(tenant.id, deleted["audit_run_id"])["task"] == "maintenance:purge_document"
    assert chunks_of(tenant.id) == 0 and not search(tenant.id, "prescrição quinquenal")
    assert wait(ingest_client, key, "parecer-1")["status"] == "deleted"
    stored = db.one(
        "SELECT extracted, original FROM documents WHERE tenant_id = CAST(:t AS uuid) AND document_id = 'parecer-1'",
        t=tenant.id,
    )
    assert stored == {"extracted": None, "original": None}
    missing = ingest_client.delete("/documents/nao-existe", headers={"Authorization": f"Bearer {key}"})
    assert missing.status_code == 404


def test_another_tenants_document_is_a_404_and_never_retrieved(ingest_client, make_tenant):
    owner, owner_key = make_tenant("ingest")
    other, other_key = make_tenant("ingest")
    indexed(ingest_client, owner_key, "Memorando sigiloso sobre a fusão com a Empresa Azul.".encode(), TEXT, "memo")
    bearer = {"Authorization": f"Bearer {other_key}"}
    assert ingest_client.get("/documents/memo", headers=bearer).status_code == 404
    assert ingest_client.delete("/documents/memo", headers=bearer).status_code == 404
    assert ingest_client.get("/documents", headers=bearer).get_json() == {"documents": [], "next_cursor": None}
    assert not search(other.id, "memorando sigiloso fusão Empresa Azul")
    assert search(owner.id, "memorando sigiloso fusão Empresa Azul")


def test_listing_pages_by_cursor_and_filters_by_status(ingest_client, make_tenant):
    _, key = make_tenant("ingest")
    bearer = {"Authorization": f"Bearer {key}"}
    for n in range(3):
        indexed(ingest_client, key, f"Nota número {n} sobre honorários.".encode(), TEXT, f"nota-{n}")
    upload(ingest_client, key, (FIXTURES / "truncated.pdf").read_bytes(), PDF, "quebrado")
    assert wait(ingest_client, key, "quebrado")["status"] == "failed"
    first = ingest_client.get("/documents?limit=2", headers=bearer).get_json()
    assert [d["document_id"] for d in first["documents"]] == ["nota-0", "nota-1"] and first["next_cursor"]
    rest = ingest_client.get(f"/documents?limit=2&cursor={first['next_cursor']}", headers=bearer).get_json()
    assert [d["document_id"] for d in rest["documents"]] == ["nota-2", "quebrado"] and rest["next_cursor"] is None
    failed = ingest_client.get("/documents?status=failed", headers=bearer).get_json()
    assert [d["document_id"] for d in failed["documents"]] == ["quebrado"]
    for query in ("status=lost", "limit=0", "limit=201", "cursor=%%%"):
        assert ingest_client.get(f"/documents?{query}", headers=bearer).status_code == 400, query


@pytest.mark.parametrize(
    ("name", "content_type", "reason"),
    [
        ("truncated.pdf", PDF, "truncated or corrupt"),
        ("encrypted.pdf", PDF, "password"),
        ("bomb.docx", DOCX, "zip bomb"),
    ],
)
def test_a_bad_file_fails_with_its_reason_and_nothing_searchable(
    ingest_client, make_tenant, name, content_type, reason
):
    tenant, key = make_tenant("ingest")
    response = upload(ingest_client, key, (FIXTURES / name).read_bytes(), content_type, "ruim")
    assert response.status_code == 202
    body = wait(ingest_client, key, "ruim")
    assert body["status"] == "failed" and reason in body["error"] and body["chunks"] == 0, body
    assert chunks_of(tenant.id) == 0


def test_a_failed_replacement_takes_the_old_version_out_too(ingest_client, make_tenant):
    tenant, key = make_tenant("ingest")
    indexed(ingest_client, key, "Contrato de comodato de um trator agrícola.".encode(), TEXT, "comodato")
    upload(ingest_client, key, (FIXTURES / "truncated.pdf").read_bytes(), PDF, "comodato")
    assert wait(ingest_client, key, "comodato")["status"] == "failed"
    assert chunks_of(tenant.id) == 0 and not search(tenant.id, "comodato trator agrícola")


@pytest.mark.parametrize(
    ("data", "content_type", "status", "words"),
    [
        ((FIXTURES / "text.pdf").read_bytes(), HTML, 415, "content is a PDF"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), PDF, 415, "image/png"),
        (b"GIF89a", "image/gif", 415, "not supported"),
        (b"", TEXT, 400, "empty"),
    ],
)
def test_what_is_knowable_at_upload_is_a_4xx(ingest_client, make_tenant, data, content_type, status, words):
    tenant, key = make_tenant("ingest")
    response = upload(ingest_client, key, data, content_type, "x")
    assert response.status_code == status and words in response.get_json()["error"]["message"]
    assert ingest_client.get("/documents/x", headers={"Authorization": f"Bearer {key}"}).status_code == 404


def test_no_key_is_401(ingest_client):
    assert upload(ingest_client, None, b"texto", TEXT).status_code == 401
    assert ingest_client.get("/documents").status_code == 401


class CountingStream(io.RawIOBase):
    """A request body that says how much of it was read."""

    def __init__(self, size: int):
        self.size, self.read_bytes = size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a memoryview
        n = min(len(buffer), self.size - self.read_bytes)
        buffer[:n] = b"a" * n
        self.read_bytes += n
        return n


def test_413_is_answered_without_reading_the_body(ingest_client, make_tenant, settings_env):
    _, key = make_tenant("ingest")
    settings_env(HARVEY_MAX_UPLOAD_BYTES="1000")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": TEXT}
    declared = CountingStream(50_000)
    response = ingest_client.post(
        "/documents", headers=headers, environ_overrides={"wsgi.input": declared, "CONTENT_LENGTH": "50000"}
    )
    assert response.status_code == 413 and declared.read_bytes == 0
    assert "1000" in response.get_json()["error"]["message"]
    chunked = CountingStream(50_000)  # no length announced: read up to the limit, and not a byte more
    response = ingest_client.post(
        "/documents",
        headers={**headers, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input": chunked, "wsgi.input_terminated": True},
    )
    assert response.status_code == 413 and chunked.read_bytes <= 1001 + 64 * 1024


def test_multipart_upload_with_id_and_title_fields(ingest_client, make_tenant):
    tenant, key = make_tenant("ingest")
    form = {
        "file": (io.BytesIO((FIXTURES / "brief.docx").read_bytes()), "contratos.docx", "application/octet-stream"),
        "id": "cc-contratos",
        "title": "Código Civil — contratos",
    }
    response = ingest_client.post(
        "/documents", data=form, content_type="multipart/form-data", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    body = wait(ingest_client, key, "cc-contratos")
    assert body["status"] == "indexed" and body["title"] == "Código Civil — contratos" and body["pages"] == 0
    assert body["content_type"] == DOCX and body["parser"] == "python-docx"
    hits = search(tenant.id, "interpretação mais favorável ao aderente contrato de adesão")
    assert hits and hits[0].chunk.metadata["heading_path"][-1] == "Seção I Preliminares"
    assert "page" not in hits[0].chunk.metadata


def test_html_drops_navigation_and_a_scan_is_read_by_ocr(ingest_client, make_tenant):
    tenant, key = make_tenant("ingest")
    page = indexed(ingest_client, key, (FIXTURES / "page.html").read_bytes(), HTML, "cf88-html")
    assert page["parser"] == "selectolax" and page["pages"] == 0
    texts = [h.chunk.text for h in search(tenant.id, "Portal da Legislação Leis Ordinárias script DOU Casa Civil")]
    assert len(texts) == page["chunks"]  # every chunk of the page, none of its navigation, script or footer
    for boilerplate in ("Portal da Legislação", "Leis Ordinárias", "Pesquisar", "texto de script", "substitui"):
        assert not any(boilerplate in t for t in texts), boilerplate
    scan = indexed(ingest_client, key, (FIXTURES / "scanned.pdf").read_bytes(), PDF, "cc-digitalizado")
    assert (scan["pages"], scan["ocr_pages"], scan["parser"]) == (2, 2, "pypdfium2+tesseract")
    hits = search(tenant.id, "obrigação de reparar o dano independentemente de culpa")
    assert hits and hits[0].chunk.document_id == "cc-digitalizado" and hits[0].chunk.metadata["page"] in (1, 2)


def document_event(data: dict, event_id: str | None = None) -> CloudEvent:
    return CloudEvent(
        {"type": "com.harvey.document.submitted", "source": "/bulk-loader", "id": event_id or str(uuid.uuid4())},
        data,
    )


def deliver(client, event: CloudEvent):
    headers, body = to_binary(event)
    return client.post("/", data=body, headers=dict(headers))


def test_a_document_event_is_taken_once(ingest_client, make_tenant):
    tenant, key = make_tenant("ingest")
    content = "# Tópico 1\n\nA multa contratual por atraso é de dois por cento ao mês.\n".encode()
    data = {
        "tenant_id": tenant.id,
        "document_id": "politica-multas",
        "content_type": MARKDOWN,
        "content_base64": base64.b64encode(content).decode(),
    }
    event = document_event(data)
    first = deliver(ingest_client, event)  # held while it is indexed: what the autoscaler counts
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.headers["X-Harvey-Document-Status"] == "indexed" and first.headers["X-Harvey-Duplicate"] == "false"
    assert first.get_data() == b""  # a broker would read a body as a reply event
    again = deliver(ingest_client, event)
    assert again.status_code == 200 and again.headers["X-Harvey-Duplicate"] == "true"
    body = wait(ingest_client, key, "politica-multas", timeout_s=0)
    assert body["status"] == "indexed" and body["chunks"] == 1
    hit = search(tenant.id, "multa contratual por atraso")[0]
    assert hit.chunk.label == "Tópico 1" and hit.chunk.metadata["heading_path"] == ["Tópico 1"]
    bad = deliver(ingest_client, document_event({**data, "content_base64": "não é base64"}))
    assert bad.status_code == 400
    assert ingest_client.post("/", json={"tenant_id": tenant.id}).status_code == 400  # not a CloudEvent


def test_an_upload_whose_pod_died_is_requeued_then_failed(ingest_client, make_tenant):
    tenant, key = make_tenant("ingest")
    indexed(ingest_client, key, "Ata da assembleia de condôminos.".encode(), TEXT, "ata")
    content = "Ata revista da assembleia de condôminos, com a nova taxa de manutenção.".encode()
    accepted = upload(ingest_client, key, content, TEXT, "ata")
    wait(ingest_client, key, "ata")

    def die_while_processing() -> str:
        row = db.one(
            "UPDATE documents SET status = 'processing', lease_until = now() - interval '1 second', "
            "original = :o WHERE tenant_id = CAST(:t AS uuid) AND document_id = 'ata' RETURNING upload_id",
            t=tenant.id,
            o=content,
        )
        return str(row["upload_id"])

    assert accepted.status_code == 202
    upload_id = die_while_processing()
    result = tasks.run("requeue_stale_documents", tasks.Params(tenant=tenant))
    assert result["stale_documents_requeued"] == 1
    assert wait(ingest_client, key, "ata", timeout_s=0)["status"] == "queued"
    resumed = deliver(
        ingest_client, document_event({"tenant_id": tenant.id, "document_id": "ata", "upload_id": upload_id})
    )
    assert resumed.status_code == 200 and resumed.headers["X-Harvey-Document-Status"] == "indexed"
    assert any("taxa de manutenção" in h.chunk.text for h in search(tenant.id, "taxa de manutenção"))

    from harvey.search.ingest import MAX_REQUEUES

    for _ in range(MAX_REQUEUES - 1):  # the first requeue above counts
        die_while_processing()
        assert tasks.run("requeue_stale_documents", tasks.Params(tenant=tenant))["stale_documents_requeued"] == 1
    die_while_processing()
    assert tasks.run("requeue_stale_documents", tasks.Params(tenant=tenant))["stale_documents_failed"] == 1
    gone = wait(ingest_client, key, "ata", timeout_s=0)
    assert gone["status"] == "failed" and "stopped" in gone["error"]
    assert chunks_of(tenant.id) == 0


def test_a_full_queue_is_503_with_retry_after_and_writes_nothing(ingest_client, make_tenant):
    import threading

    from harvey import pool
    from harvey.config import get_settings

    _, key = make_tenant("ingest")
    settings = get_settings()
    workers = pool.named("ingest", settings.ingest_workers, settings.ingest_queue_depth)
    release = threading.Event()
    try:
        while True:  # fill every slot with a job that waits
            workers.submit(lambda: None, lambda _: release.wait(30))
    except pool.Full:
        pass
    try:
        response = upload(ingest_client, key, b"Texto qualquer.", TEXT, "sem-vaga")
    finally:
        release.set()
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert ingest_client.get("/documents/sem-vaga", headers={"Authorization": f"Bearer {key}"}).status_code == 404


def folder_of_files(tmp_path: Path) -> Path:
    folder = tmp_path / "acervo"
    (folder / "pareceres").mkdir(parents=True)
    (folder / "cdc.pdf").write_bytes((FIXTURES / "text.pdf").read_bytes())
    (folder / "cf88.html").write_bytes((FIXTURES / "page.html").read_bytes())
    (folder / "quebrado.pdf").write_bytes((FIXTURES / "truncated.pdf").read_bytes())
    (folder / "pareceres" / "prescricao.md").write_text("# Prescrição\n\nPrazo de cinco anos.\n", encoding="utf-8")
    return folder


def test_the_cli_indexes_a_folder_of_files_through_the_same_path(make_tenant, tmp_path):
    import json

    from click.testing import CliRunner
    from harvey.cli import main

    tenant, key = make_tenant("ingest")
    folder = folder_of_files(tmp_path)
    (folder / "leis.jsonl").write_text(json.dumps({"id": "CC:art186", "text": "Art. 186. Aquele que causar dano."}))
    run = CliRunner().invoke(main, ["ingest", str(folder), "--tenant", tenant.name, "--json"])
    assert run.exit_code == 1, run.output  # one file failed
    result = json.loads(run.stdout)
    assert (result["added"], result["unchanged"], result["failed"]) == (4, 0, 1)
    assert result["failures"][0]["document_id"] == "quebrado.pdf" and "truncated" in result["failures"][0]["reason"]
    query = "SELECT document_id, status, pages, origin FROM documents WHERE tenant_id = CAST(:t AS uuid)"
    rows = {r["document_id"]: r for r in db.query(query, t=tenant.id)}
    assert rows["cdc.pdf"] == {"document_id": "cdc.pdf", "status": "indexed", "pages": 2, "origin": "cli"}
    assert rows["pareceres~prescricao.md"]["status"] == "indexed" and rows["CC:art186"]["status"] == "indexed"
    again = CliRunner().invoke(main, ["ingest", str(folder), "--tenant", tenant.name, "--json"])
    assert json.loads(again.stdout)["unchanged"] == 4


def test_the_cli_uploads_a_folder_through_the_api_and_follows_each_document(make_tenant, tmp_path):
    import json
    import threading

    from click.testing import CliRunner
    from functions_framework import create_app
    from harvey.cli import main
    from werkzeug.serving import make_server

    tenant, key = make_tenant("ingest")
    folder = folder_of_files(tmp_path)
    server = make_server("127.0.0.1", 0, create_app("ingest", "functions/ingest/main.py"), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        run = CliRunner().invoke(main, ["ingest", str(folder), "--to", url, "--key", key, "--parallel", "2", "--json"])
        again = CliRunner().invoke(main, ["ingest", str(folder / "cdc.pdf"), "--to", url, "--key", key, "--json"])
    finally:
        server.shutdown()
        thread.join()
    assert run.exit_code == 1, run.output
    result = json.loads(run.stdout)
    assert (result["indexed"], result["failed"]) == (3, 1) and result["chunks"] > 3
    assert result["failures"][0]["document_id"] == "quebrado.pdf" and "truncated" in result["failures"][0]["reason"]
    assert again.exit_code == 0 and json.loads(again.stdout)["unchanged"] == 1
    assert [h.chunk.document_id for h in search(tenant.id, "prazo de prescrição de cinco anos")][0] == (
        "pareceres~prescricao.md"
    )
