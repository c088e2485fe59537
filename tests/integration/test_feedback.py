"""The feedback function as clients see it: HTTP with a Bearer key, and CloudEvents from the cluster."""

from __future__ import annotations

import json
import uuid

import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from harvey import events
from harvey.drafting import runs
from harvey.schemas import GenerateRequest
from harvey.store import db, feedback

DOCUMENT = "# Petição\n\nO autor pede indenização [1].\n"


@pytest.fixture(scope="module")
def client():
    from functions_framework import create_app

    return create_app("feedback", "functions/feedback/main.py").test_client()


def finished_run(tenant, document: str = DOCUMENT, doc_type: str = "peticao_inicial") -> str:
    """A run as the generate function leaves it: a `runs` row holding the returned document."""
    run_id = str(uuid.uuid4())
    job = runs.Job(GenerateRequest(doc_type=doc_type, task="Ação de indenização por cobrança indevida"))
    runs.create(tenant, job, run_id=run_id, origin="sync")
    db.query(
        "UPDATE runs SET status = 'succeeded', result = CAST(:r AS jsonb), document_chars = :n "
        "WHERE run_id = CAST(:id AS uuid)",
        r=db.jsonb({"run_id": run_id, "document_md": document}),
        n=len(document),
        id=run_id,
    )
    return run_id


def post(client, key, body, **headers):
    headers["Authorization"] = f"Bearer {key}"
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post("/", data=data, headers=headers, content_type="application/json")


def rows(tenant_id: str) -> int:
    return db.one("SELECT count(*) AS n FROM feedback_events WHERE tenant_id = CAST(:t AS uuid)", t=tenant_id)["n"]


def test_post_stores_one_row_and_returns_201(client, make_tenant):
    tenant, key = make_tenant()
    run_id = finished_run(tenant)
    body = {
        "run_id": run_id,
        "rating": -1,
        "comment": "faltou o art. 42 do CDC",
        "error_spans": [{"start": 2, "end": 10, "label": "titulo", "suggestion": "Petição inicial"}],
        "missing_sources": [{"raw": "CDC art. 42", "class": "lei", "relevance_score": 0.9}],
        "edited_text_md": "# Petição inicial\n",
        "tags": ["consumidor"],
        "user_id": "adv-1",
    }
    response = post(client, key, body)
    assert response.status_code == 201, response.get_data(as_text=True)
    stored = db.one("SELECT * FROM feedback_events WHERE id = CAST(:id AS uuid)", id=response.get_json()["id"])
    assert stored["tenant_id"] == uuid.UUID(tenant.id) and stored["rating"] == -1
    assert stored["missing_sources"] == [{"raw": "CDC art. 42", "class": "lei", "relevance_score": 0.9}]
    assert stored["error_spans"][0]["label"] == "titulo"


def test_idempotency_key_retry_stores_one_row(client, make_tenant):
    tenant, key = make_tenant()
    body = {"run_id": finished_run(tenant), "rating": 1}
    first = post(client, key, body, **{"Idempotency-Key": "k-1"})
    again = post(client, key, body, **{"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert rows(tenant.id) == 1
    conflict = post(client, key, {**body, "rating": -1}, **{"Idempotency-Key": "k-1"})
    assert conflict.status_code == 422 and conflict.get_json()["error"]["field"] == "Idempotency-Key"
    assert post(client, key, body).status_code == 201  # no key: a second, distinct row
    assert rows(tenant.id) == 2


def test_same_idempotency_key_in_two_tenants_is_two_rows(client, make_tenant):
    a, key_a = make_tenant()
    b, key_b = make_tenant()
    assert (
        post(client, key_a, {"run_id": finished_run(a), "rating": 0}, **{"Idempotency-Key": "same"}).status_code == 201
    )
    assert (
        post(client, key_b, {"run_id": finished_run(b), "rating": 0}, **{"Idempotency-Key": "same"}).status_code == 201
    )


def test_another_tenants_run_is_404_like_a_missing_one(client, make_tenant):
    owner, _ = make_tenant()
    _, other_key = make_tenant()
    theirs = post(client, other_key, {"run_id": finished_run(owner), "rating": 1})
    missing = post(client, other_key, {"run_id": str(uuid.uuid4()), "rating": 1})
    assert theirs.status_code == missing.status_code == 404
    assert theirs.get_json()["error"]["message"].split()[0:2] == missing.get_json()["error"]["message"].split()[0:2]
    assert rows(owner.id) == 0


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"rating": 2}, "rating"),
        ({"rating": "1"}, "rating"),
        ({"rating": True}, "rating"),
        ({"run_id": "not-a-uuid"}, "run_id"),
        ({"error_spans": [{"start": 0, "end": 999, "label": "x"}]}, "error_spans.0.end"),
        ({"error_spans": [{"start": 5, "end": 5, "label": "x"}]}, "error_spans.0.end"),
        ({"error_spans": [{"start": -1, "end": 3, "label": "x"}]}, "error_spans.0.start"),
        ({"missing_sources": [{"raw": "CDC"}]}, "missing_sources.0.class"),
        ({"ratting": 1}, "ratting"),
    ],
)
def test_bad_feedback_is_400_naming_the_field(client, make_tenant, patch, field):
    tenant, key = make_tenant()
    response = post(client, key, {"run_id": finished_run(tenant), "rating": 1, **patch})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]["field"] == field
    assert rows(tenant.id) == 0


def test_malformed_json_and_missing_key(client, make_tenant):
    _, key = make_tenant()
    bad = post(client, key, b"{nope")
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "body"
    assert client.post("/", data="{}", content_type="application/json").status_code == 401


def test_feedback_on_a_running_run_is_409(client, make_tenant):
    tenant, key = make_tenant()
    run_id = str(uuid.uuid4())
    runs.create(
        tenant, runs.Job(GenerateRequest(doc_type="parecer", task="Parecer sobre prazo")), run_id=run_id, origin="async"
    )
    assert post(client, key, {"run_id": run_id, "rating": 1}).status_code == 409


def _event(tenant_id: str, data: dict, event_id: str | None = None, source: str = "/test/feedback"):
    attributes = {
        "type": "com.harvey.feedback.submitted",
        "source": source,
        "id": event_id or str(uuid.uuid4()),
    }
    return CloudEvent(attributes, {"tenant_id": tenant_id, **data})


def _deliver(client, event, mode: str = "binary"):
    headers, body = (to_binary if mode == "binary" else to_structured)(event)
    return client.post("/", data=body, headers=dict(headers))


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_cloudevent_redelivered_is_stored_once(client, make_tenant, mode):
    tenant, _ = make_tenant()
    event = _event(tenant.id, {"run_id": finished_run(tenant), "rating": 1, "tags": ["ok"]})
    first = _deliver(client, event, mode)
    assert first.status_code == 201, first.get_data(as_text=True)
    for _ in range(3):
        again = _deliver(client, event, mode)
        assert again.status_code == 200 and again.headers["X-Harvey-Duplicate"] == "true"
        assert again.headers["X-Harvey-Feedback-Id"] == first.headers["X-Harvey-Feedback-Id"]
        assert again.data == b""  # a broker would take a non-CloudEvent body for a bad reply
    assert rows(tenant.id) == 1


def test_cloudevent_before_its_run_exists_is_retried_then_taken(client, make_tenant):
    """Out of order: feedback arrives before the run is stored. 404 makes the broker retry."""
    tenant, _ = make_tenant()
    run_id = str(uuid.uuid4())
    early = _event(tenant.id, {"run_id": run_id, "rating": -1})
    assert _deliver(client, early).status_code == 404
    runs.create(tenant, runs.Job(GenerateRequest(doc_type="parecer", task="Parecer")), run_id=run_id, origin="event")
    assert _deliver(client, early).status_code == 409  # still running: retry later
    db.query("UPDATE runs SET status = 'succeeded', document_chars = 10 WHERE run_id = CAST(:r AS uuid)", r=run_id)
    assert _deliver(client, early).status_code == 201
    assert _deliver(client, early).status_code == 200
    assert rows(tenant.id) == 1


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"rating": 5}, "rating"),
        ({"tenant_id": "nobody"}, "tenant_id"),
        ({"tenant_id": str(uuid.uuid4())}, "tenant_id"),
    ],
)
def test_cloudevent_that_can_never_succeed_is_400(client, make_tenant, data, field):
    tenant, _ = make_tenant()
    event = _event(tenant.id, {"run_id": finished_run(tenant), "rating": 1})
    event = CloudEvent({"type": event["type"], "source": event["source"], "id": event["id"]}, {**event.data, **data})
    response = _deliver(client, event)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == field


def test_cloudevent_of_another_type_or_without_json_data_is_400(client, make_tenant):
    tenant, _ = make_tenant()
    wrong = CloudEvent({"type": "com.example.other", "source": "/x"}, {"tenant_id": tenant.id})
    assert _deliver(client, wrong).status_code == 400
    text = CloudEvent(
        {"type": "com.harvey.feedback.submitted", "source": "/x", "datacontenttype": "text/plain"},
        "just text",
    )
    assert _deliver(client, text).status_code == 400


def test_database_down_is_503_for_events(client, make_tenant, settings_env):
    tenant, _ = make_tenant()
    event = _event(tenant.id, {"run_id": str(uuid.uuid4()), "rating": 1})
    settings_env(DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere")
    db.reset()
    try:
        response = _deliver(client, event)
    finally:
        db.reset()
    assert response.status_code == 503 and response.headers["Retry-After"]


def test_summary_and_analytics_are_tenant_scoped(client, make_tenant):
    tenant, key = make_tenant()
    other, other_key = make_tenant()
    run_id = finished_run(tenant)
    parecer = finished_run(tenant, doc_type="parecer")
    post(
        client,
        key,
        {
            "run_id": run_id,
            "rating": -1,
            "error_spans": [{"start": 0, "end": 3, "label": "fato"}],
            "missing_sources": [{"raw": "CDC art. 42", "class": "lei"}],
        },
    )
    post(client, key, {"run_id": run_id, "rating": 1, "error_spans": [{"start": 4, "end": 9, "label": "fato"}]})
    post(client, key, {"run_id": parecer, "rating": 0})
    summary = client.get(f"/runs/{run_id}/summary", headers={"Authorization": f"Bearer {key}"}).get_json()
    assert summary["count"] == 2 and summary["mean_rating"] == 0.0
    assert summary["error_labels"] == [{"label": "fato", "count": 2}]
    assert summary["missing_sources"][0]["raw"] == "CDC art. 42"
    hidden = client.get(f"/runs/{run_id}/summary", headers={"Authorization": f"Bearer {other_key}"})
    assert hidden.status_code == 404
    report = client.get("/analytics?since=2020-01-01", headers={"Authorization": f"Bearer {key}"}).get_json()
    assert report["total"] == 3
    assert report["doc_types"]["peticao_inicial"]["count"] == 2
    assert report["doc_types"]["peticao_inicial"]["top_error_labels"] == [{"label": "fato", "count": 2}]
    assert report["doc_types"]["parecer"]["mean_rating"] == 0.0
    empty = client.get("/analytics", headers={"Authorization": f"Bearer {other_key}"}).get_json()
    assert empty["total"] == 0 and other.id not in json.dumps(report)
    bad = client.get("/analytics?since=yesterday", headers={"Authorization": f"Bearer {key}"})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "since"


def test_feedback_on_a_cli_run_uses_its_audit_row(make_tenant):
    """Runs made by `harvey generate` have only an audit row: feedback yes, spans no."""
    from tests.integration.test_maintenance import write_chain

    tenant, _ = make_tenant()
    (row,) = write_chain(tenant.id, ages_days=[1])
    stored = feedback.record(tenant.id, {"run_id": str(row["run_id"]), "rating": 1})
    assert stored.created
    with pytest.raises(feedback.InvalidFeedback) as caught:
        feedback.record(
            tenant.id,
            {
                "run_id": str(row["run_id"]),
                "rating": 1,
                "error_spans": [{"start": 0, "end": 1, "label": "x"}],
            },
        )
    assert caught.value.field == "error_spans"


def test_metrics_and_recorded_event(client, make_tenant, sink, settings_env):
    tenant, key = make_tenant()
    settings_env(K_SINK=sink.url)
    response = post(client, key, {"run_id": finished_run(tenant), "rating": -1})
    assert response.status_code == 201
    assert events.drain()  # the event is written without waiting for the sink's reply
    (recorded,) = [e for e in sink.events if e["type"] == "com.harvey.feedback.recorded"]
    assert recorded["data"]["feedback_id"] == response.get_json()["id"] and recorded["data"]["rating"] == -1
    exposition = client.get("/metrics").get_data(as_text=True)
    assert 'feedback_events_total{rating="-1"}' in exposition and "feedback_rating_bucket" in exposition
