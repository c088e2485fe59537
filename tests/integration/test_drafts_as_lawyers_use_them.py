"""Drafts the way lawyers work (issue 12): a CLI draft is a run; HTTP and CLI drafts export to Word (and
LibreOffice opens them); every answer carries a signed review link; a draft can be streamed as
Server-Sent Events, read here by a real SSE client over real HTTP."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import docx
import httpx
import pytest
from click.testing import CliRunner
from harvey.review import links
from harvey.store import db
from httpx_sse import connect_sse
from werkzeug.serving import make_server

from tests.integration.test_generate_http import VALID

SECRET = "s" * 40
LETTERHEAD = Path(__file__).resolve().parents[1] / "fixtures" / "export" / "letterhead.docx"
CITATION = re.compile(r"\[\d+\]")
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture(scope="module")
def generate_app():
    from functions_framework import create_app

    return create_app("generate", "functions/generate/main.py")


@pytest.fixture
def client(generate_app, settings_env):
    settings_env(HARVEY_REVIEW_SECRET=SECRET, HARVEY_REVIEW_BASE_URL="https://review.example/")
    return generate_app.test_client()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _draft(client, key: str) -> dict:
    answer = client.post("/", json=VALID, headers=_bearer(key))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def test_every_answer_carries_a_review_link_signed_for_its_tenant_and_run(client, indexed_tenant):
    tenant, key = indexed_tenant
    body = _draft(client, key)
    url = httpx.URL(body["review_url"])
    assert (url.host, url.path) == ("review.example", f"/review/{body['run_id']}")
    assert links.verify(SECRET.encode(), url.params["token"], body["run_id"]) == tenant.id
    stored = client.get(f"/runs/{body['run_id']}", headers=_bearer(key)).get_json()
    assert links.verify(SECRET.encode(), httpx.URL(stored["result"]["review_url"]).params["token"], body["run_id"])


def test_without_a_review_secret_there_is_no_link(generate_app, indexed_tenant, settings_env):
    settings_env(HARVEY_REVIEW_SECRET="")
    _, key = indexed_tenant
    assert _draft(generate_app.test_client(), key)["review_url"] is None


def test_an_http_draft_exports_to_the_same_word_bytes_every_time(client, indexed_tenant, make_tenant):
    _, key = indexed_tenant
    body = _draft(client, key)
    first = client.get(f"/runs/{body['run_id']}/document.docx", headers=_bearer(key))
    assert first.status_code == 200 and first.mimetype == DOCX
    assert client.get(f"/runs/{body['run_id']}/document.docx", headers=_bearer(key)).data == first.data
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(first.data)).paragraphs)
    assert CITATION.search(text) and "Referências" in text
    assert body["run_id"] in docx.Document(io.BytesIO(first.data)).core_properties.identifier
    _, other_key = make_tenant()
    assert client.get(f"/runs/{body['run_id']}/document.docx", headers=_bearer(other_key)).status_code == 404
    assert client.get(f"/runs/{body['run_id']}/document.docx").status_code == 401


def test_a_run_without_a_document_is_409_not_an_empty_file(client, make_tenant):
    from harvey.drafting import runs
    from harvey.schemas import GenerateRequest

    tenant, key = make_tenant()
    job = runs.parse(dict(VALID), None)
    assert isinstance(job.req, GenerateRequest)
    run_id = "7a4f52c4-4a3e-4c1b-9c7e-0b3f5d2a9e11"
    runs.create(tenant, job, run_id=run_id, origin="async")
    answer = client.get(f"/runs/{run_id}/document.docx", headers=_bearer(key))
    assert answer.status_code == 409 and "no document" in answer.get_json()["error"]["message"]


def _cli(*args: str) -> str:
    from harvey.cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_cli_draft_is_a_run_feedback_can_point_into(indexed_tenant, tmp_path, settings_env):
    from functions_framework import create_app

    tenant, key = indexed_tenant
    out = _cli(
        "generate",
        "--tenant",
        tenant.name,
        "--doc-type",
        VALID["doc_type"],
        "--task",
        VALID["task"],
        "--facts",
        VALID["facts"],
        "--json",
        "--docx",
        str(tmp_path / "cli.docx"),
    )
    body = json.loads(out)
    row = db.one("SELECT origin, status, document_chars FROM runs WHERE run_id = CAST(:r AS uuid)", r=body["run_id"])
    assert row == {"origin": "cli", "status": "succeeded", "document_chars": len(body["document_md"])}
    start = CITATION.search(body["document_md"]).start()
    feedback = create_app("feedback", "functions/feedback/main.py").test_client()
    span = {"start": start, "end": start + 3, "label": "citação errada"}
    answer = feedback.post(
        "/", json={"run_id": body["run_id"], "rating": -1, "error_spans": [span]}, headers=_bearer(key)
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert docx.Document(str(tmp_path / "cli.docx")).core_properties.identifier == body["run_id"]
    _cli("runs", "export", body["run_id"], "--tenant", tenant.name, "--docx", str(tmp_path / "again.docx"))
    assert (tmp_path / "again.docx").read_bytes() == (tmp_path / "cli.docx").read_bytes()


def test_a_letterhead_is_kept_and_a_bad_one_refused(client, make_tenant, demo_docs, tmp_path):
    from harvey.cli import main
    from harvey.search.ingest import ingest

    tenant, key = make_tenant()
    ingest(tenant.id, demo_docs)
    _cli("tenant", "template", tenant.name, "--docx", str(LETTERHEAD))
    body = _draft(client, key)
    exported = docx.Document(io.BytesIO(client.get(f"/runs/{body['run_id']}/document.docx", headers=_bearer(key)).data))
    plain = docx.Document(str(LETTERHEAD))
    assert exported.sections[-1].header.paragraphs[-1].text == plain.sections[-1].header.paragraphs[-1].text
    (tmp_path / "not.docx").write_bytes(b"%PDF-1.7 not a word file")
    refused = CliRunner().invoke(main, ["tenant", "template", tenant.name, "--docx", str(tmp_path / "not.docx")])
    assert refused.exit_code == 1


def test_libreoffice_opens_both_an_http_and_a_cli_export(client, indexed_tenant, tmp_path):
    soffice, pdftotext = shutil.which("soffice"), shutil.which("pdftotext")
    if soffice is None or pdftotext is None:
        pytest.skip("LibreOffice or pdftotext missing: run `make tools`")
    tenant, key = indexed_tenant
    http_run = _draft(client, key)
    (tmp_path / "http.docx").write_bytes(
        client.get(f"/runs/{http_run['run_id']}/document.docx", headers=_bearer(key)).data
    )
    cli_run = json.loads(
        _cli(
            "generate",
            "--tenant",
            tenant.name,
            "--doc-type",
            "parecer",
            "--task",
            "Parecer sobre o prazo decadencial para reclamar de vício aparente",
            "--json",
            "--docx",
            str(tmp_path / "cli.docx"),
        )
    )
    converted = subprocess.run(
        [
            soffice,
            f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(tmp_path),
            str(tmp_path / "http.docx"),
            str(tmp_path / "cli.docx"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert converted.returncode == 0, converted.stderr
    for name, run in (("http", http_run), ("cli", cli_run)):
        text = subprocess.run(
            [pdftotext, str(tmp_path / f"{name}.pdf"), "-"], capture_output=True, text=True, check=True
        ).stdout
        flat = " ".join(text.split())
        assert CITATION.search(flat) and run["run_id"] in flat


@pytest.fixture
def served(generate_app, settings_env):
    """The generate function on a real socket, as Knative's queue-proxy would reach it."""
    settings_env(HARVEY_STREAM_HEARTBEAT_S="0.01", HARVEY_REVIEW_SECRET=SECRET)
    server = make_server("127.0.0.1", 0, generate_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _stream(base: str, key: str, body: dict) -> tuple[list[tuple[str, dict]], httpx.Response]:
    events = []
    with (
        httpx.Client(timeout=120) as http,
        connect_sse(
            http, "POST", f"{base}/", json=body, headers={**_bearer(key), "Accept": "text/event-stream"}
        ) as source,
    ):
        for event in source.iter_sse():
            events.append((event.event, json.loads(event.data)))
        return events, source.response


def test_a_streamed_draft_sends_sources_sections_then_the_normal_result(served, indexed_tenant):
    tenant, key = indexed_tenant
    events, response = _stream(served, key, VALID)
    assert response.headers["content-type"].startswith("text/event-stream")
    names = [name for name, _ in events]
    assert names[0] == "retrieved" and names[-1] == "done" and "section" in names
    assert set(names) <= {"retrieved", "section", "done"}
    sources = events[0][1]["sources"]
    assert [s["n"] for s in sources] == list(range(1, len(sources) + 1))
    done = events[-1][1]
    sections = "".join(data["markdown"] for name, data in events if name == "section")
    assert sections.strip() and sections.strip() in done["document_md"]
    stored = httpx.get(f"{served}/runs/{done['run_id']}", headers=_bearer(key)).json()
    assert stored["status"] == "succeeded"
    assert {k: v for k, v in stored["result"].items() if k != "review_url"} == {
        k: v for k, v in done.items() if k != "review_url"
    }
    audited = db.one("SELECT count(*) AS n FROM run_audit WHERE run_id = CAST(:r AS uuid)", r=done["run_id"])
    assert audited["n"] == 1 and response.headers["location"] == f"/runs/{done['run_id']}"


def test_a_streamed_failure_is_the_error_event_with_the_http_body(served, make_tenant):
    tenant, key = make_tenant()  # no documents: the plain POST would be a 422
    events, _ = _stream(served, key, VALID)
    assert [name for name, _ in events] == ["error"]
    error = events[0][1]
    assert error["error"]["status"] == 422 and "ingest" in error["error"]["message"]
    assert db.one("SELECT count(*) AS n FROM run_audit WHERE run_id = CAST(:r AS uuid)", r=error["run_id"])["n"] == 1


def test_bad_input_is_refused_before_the_stream_starts(served, indexed_tenant):
    _, key = indexed_tenant
    answer = httpx.post(
        f"{served}/", json={"doc_type": "peticao_inicial"}, headers={**_bearer(key), "Accept": "text/event-stream"}
    )
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "task"


def test_a_draft_keeps_the_connection_with_heartbeats_while_it_works(served, indexed_tenant):
    _, key = indexed_tenant
    with httpx.stream(
        "POST", f"{served}/", json=VALID, headers={**_bearer(key), "Accept": "text/event-stream"}, timeout=120
    ) as response:
        raw = "".join(response.iter_text())
    assert raw.startswith(": run ") and ": heartbeat" in raw and "event: done" in raw
