"""Async generation: `Prefer: respond-async`, the generate.requested CloudEvent, GET /runs/{id}."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from harvey.drafting import runs
from harvey.store import audit, db

from tests.integration.test_generate_http import VALID


@pytest.fixture(scope="module")
def firm(demo_docs):
    """One indexed tenant for the module (ingest is the slow part): (Tenant, api_key)."""
    from harvey.search.ingest import ingest
    from harvey.store import tenants

    tenant, key = tenants.create(f"async-{uuid.uuid4().hex[:8]}")
    ingest(tenant.id, [d for d in demo_docs if d.document_id in WANTED])
    return tenant, key


WANTED = {"CDC:art6", "CDC:art14", "CDC:art42", "CC:art186", "CC:art927", "CPC:art319"}


@pytest.fixture(scope="module")
def client():
    from functions_framework import create_app

    return create_app("generate", "functions/generate/main.py").test_client()


def status(client, key: str, run_id: str):
    return client.get(f"/runs/{run_id}", headers={"Authorization": f"Bearer {key}"})


def wait_final(client, key: str, run_id: str, limit_s: float = 120) -> dict:
    """Poll like a client would; the limit only stops a hung test, it asserts nothing about speed."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        body = status(client, key, run_id).get_json()
        if body["status"] in runs.FINAL:
            return body
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never finished")


def test_respond_async_is_202_with_location_then_the_result(client, firm):
    tenant, key = firm
    response = client.post(
        "/",
        data=json.dumps(VALID),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}", "Prefer": "respond-async"},
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    run_id = response.get_json()["run_id"]
    assert response.headers["Location"] == f"/runs/{run_id}"
    assert status(client, key, run_id).get_json()["status"] in ("queued", "running", "succeeded")
    done = wait_final(client, key, run_id)
    assert done["status"] == "succeeded" and done["result"]["run_id"] == run_id
    assert audit.get(tenant.id, run_id)["output_hash"] == audit.sha256_text(done["result"]["document_md"])


def test_sync_runs_are_stored_too_and_runs_are_tenant_scoped(client, firm, make_tenant):
    _, key = firm
    _, other_key = make_tenant()
    response = client.post(
        "/", data=json.dumps(VALID), content_type="application/json", headers={"Authorization": f"Bearer {key}"}
    )
    run_id = response.get_json()["run_id"]
    mine = status(client, key, run_id).get_json()
    assert mine["status"] == "succeeded" and mine["result"]["document_md"] == response.get_json()["document_md"]
    assert status(client, other_key, run_id).status_code == 404
    assert status(client, key, str(uuid.uuid4())).status_code == 404
    assert status(client, key, "not-a-uuid").status_code == 404
    assert client.get(f"/runs/{run_id}").status_code == 401


def test_a_failed_run_reports_its_error(client, make_tenant):
    tenant, key = make_tenant("empty")
    response = client.post(
        "/",
        data=json.dumps(VALID),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}", "Prefer": "respond-async"},
    )
    done = wait_final(client, key, response.get_json()["run_id"])
    assert done["status"] == "failed" and done["error"]["status"] == 422


def requested(tenant_id: str, event_id: str | None = None) -> CloudEvent:
    return CloudEvent(
        {
            "type": "com.harvey.generate.requested",
            "source": "/test/intake",
            "id": event_id or str(uuid.uuid4()),
        },
        {"tenant_id": tenant_id, **VALID},
    )


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_generate_requested_event_runs_once_under_a_derived_run_id(client, firm, mode):
    tenant, key = firm
    event = requested(tenant.id)
    headers, body = (to_binary if mode == "binary" else to_structured)(event)
    first = client.post("/", data=body, headers=dict(headers))
    assert first.status_code == 200, first.get_data(as_text=True)
    run_id = first.headers["X-Harvey-Run-Id"]
    assert first.data == b"" and first.headers["Location"] == f"/runs/{run_id}"
    assert run_id == runs.run_id_for_event("/test/intake", event["id"])
    again = client.post("/", data=body, headers=dict(headers))
    assert again.status_code == 200 and again.headers["X-Harvey-Duplicate"] == "true"
    assert again.headers["X-Harvey-Run-Status"] == "succeeded"
    assert status(client, key, run_id).get_json()["status"] == "succeeded"
    audited = db.one("SELECT count(*) AS n FROM run_audit WHERE run_id = CAST(:r AS uuid)", r=run_id)
    assert audited["n"] == 1


def test_redelivery_while_running_is_409_and_a_dead_holder_is_taken_over(client, firm):
    tenant, _ = firm
    event = requested(tenant.id)
    run_id = runs.run_id_for_event(event["source"], event["id"])
    job = runs.job_from_row({k: v for k, v in VALID.items()})
    runs.create(tenant, job, run_id=run_id, origin="event", status="running")
    headers, body = to_binary(event)
    assert client.post("/", data=body, headers=dict(headers)).status_code == 409
    db.query("UPDATE runs SET lease_until = now() - interval '1 second' WHERE run_id = CAST(:r AS uuid)", r=run_id)
    taken = client.post("/", data=body, headers=dict(headers))
    assert taken.status_code == 200 and taken.headers["X-Harvey-Run-Status"] == "succeeded"


@pytest.mark.parametrize(
    ("data", "field"),
    [({"tenant_id": "x"}, "tenant_id"), ({"doc_type": "memorando"}, "doc_type"), ({"task": None}, "task")],
)
def test_generate_requested_that_can_never_succeed_is_400(client, make_tenant, data, field):
    tenant, _ = make_tenant()
    event = CloudEvent(
        {"type": "com.harvey.generate.requested", "source": "/t"}, {"tenant_id": tenant.id, **VALID, **data}
    )
    headers, body = to_binary(event)
    response = client.post("/", data=body, headers=dict(headers))
    assert response.status_code == 400 and response.get_json()["error"]["field"] == field


def test_generated_event_anchors_the_audit_chain_against_deleting_its_newest_row(
    client, make_tenant, demo_docs, sink, settings_env
):
    from click.testing import CliRunner
    from harvey.cli import main
    from harvey.search.ingest import ingest

    tenant, key = make_tenant()
    ingest(tenant.id, [d for d in demo_docs if d.document_id in WANTED])
    settings_env(K_SINK=sink.url)
    response = client.post(
        "/", data=json.dumps(VALID), content_type="application/json", headers={"Authorization": f"Bearer {key}"}
    )
    run_id = response.get_json()["run_id"]
    [event] = [e for e in sink.events if e["type"] == "com.harvey.document.generated"]
    row = audit.get(tenant.id, run_id)
    assert (event["data"]["audit_seq"], event["data"]["audit_row_hash"]) == (row["seq"], row["row_hash"])

    anchor = f"{event['data']['audit_seq']}:{event['data']['audit_row_hash']}"
    verify = ["audit", "verify", "--tenant", tenant.name, "--anchor", anchor, "--json"]
    assert CliRunner().invoke(main, verify).exit_code == 0
    db.query("DELETE FROM run_audit WHERE run_id = CAST(:r AS uuid)", r=run_id)
    result = CliRunner().invoke(main, verify)
    assert result.exit_code == 1
    assert json.loads(result.output)[tenant.name]["problems"] == [{"problem": "anchor_missing", "seq": row["seq"]}]
    bad = CliRunner().invoke(main, ["audit", "verify", "--tenant", tenant.name, "--anchor", "7:nothex"])
    assert bad.exit_code == 2 and "SEQ:HASH" in bad.output
