"""`generate`: draft a grounded legal document over HTTP.

POST /               {"doc_type", "task", "facts"?, "parties"?, "top_k"?}  (Bearer API key)
                     200 with the draft; with `Prefer: respond-async`: 202, `Location: /runs/{run_id}`
POST /  (CloudEvent) com.harvey.generate.requested, data = tenant_id + the request body; the run_id
                     is derived from source + id, so a redelivery maps to the same run
GET  /runs/{run_id}  status queued | running | succeeded | failed | withheld, and the result when done
GET  /healthz        liveness/readiness, no I/O (`?deep=1` checks PostgreSQL and Qdrant)
GET  /metrics        Prometheus exposition

`respond-async` runs in a thread of the pod that took the request: at most once (if the
pod dies the run stays `running`). The CloudEvent path is the durable one: the broker
redelivers until a pod answers 2xx.
"""

from __future__ import annotations

import uuid

import functions_framework
from flask import Request, Response
from harvey import logs, warmup
from harvey.config import get_settings
from harvey.http import ApiError, bearer_tenant, endpoint, json_response, read_json
from pydantic import ValidationError

logs.setup(get_settings().log_level)
EVENT_REQUESTED = "com.harvey.generate.requested"


def _warm_index() -> None:
    from harvey.retrieval import open_index

    open_index()


def _warm_llm() -> None:
    from harvey import llm

    llm.load()


def _checks() -> dict[str, str]:
    from harvey import db
    from harvey.retrieval import open_index

    results = {}
    for name, check in (("postgres", db.ping), ("qdrant", lambda: open_index().ping())):
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            results[name] = f"error: {exc}"
    return results


@functions_framework.http
@endpoint("generate", checks=_checks)
def generate(request: Request) -> Response:
    from harvey import cloudevents_in
    from harvey.db import DatabaseUnavailable

    warmup.start(_warm_llm, _warm_index)
    parts = [p for p in request.path.split("/") if p]
    try:
        if request.method == "GET" and len(parts) == 2 and parts[0] == "runs":
            return _run_status(request, parts[1])
        if parts:
            raise ApiError(404, f"no route {request.method} {request.path}")
        if request.method != "POST":
            raise ApiError(405, "use POST / to generate a document")
        return _event(request) if cloudevents_in.is_cloudevent(request) else _generate(request)
    except DatabaseUnavailable as exc:
        raise ApiError(503, f"the database is unreachable: {exc}", retry_after=10) from exc


def _job(body: dict, request_id: str | None):
    from harvey import pipeline
    from harvey.schemas import GenerateRequest, describe

    try:
        parsed = GenerateRequest.model_validate(body)
    except ValidationError as exc:
        field, message = describe(exc)
        raise ApiError(400, message, field=field) from exc
    return pipeline.GenerateInput(
        doc_type=parsed.doc_type, task=parsed.task, facts=parsed.facts, parties=parsed.parties,
        top_k=parsed.top_k, user_id=parsed.user_id, request_id=request_id,
    )  # fmt: skip


def _generate(request: Request) -> Response:
    from harvey import pipeline, runs

    tenant = bearer_tenant(request)
    job = _job(read_json(request, get_settings().max_request_bytes), request.headers.get("X-Request-Id"))
    run_id = str(uuid.uuid4())
    if "respond-async" in request.headers.get("Prefer", "").lower():
        runs.create(tenant, job, run_id=run_id, origin="async")
        runs.execute_in_background(tenant, job, run_id)
        headers = {"Location": f"/runs/{run_id}", "Preference-Applied": "respond-async"}
        return json_response(
            {"run_id": run_id, "status": "queued", "location": f"/runs/{run_id}"}, 202, headers
        )
    runs.create(tenant, job, run_id=run_id, origin="sync")
    try:
        result = runs.execute(tenant, job, run_id)
    except pipeline.GenerationError as err:
        raise ApiError(err.status, err.message, retry_after=err.retry_after, run_id=err.run_id) from err
    return json_response(result)


def _run_status(request: Request, run_id: str) -> Response:
    from harvey import runs

    row = runs.get(bearer_tenant(request).id, run_id)
    if row is None:
        raise ApiError(404, f"no run {run_id}")
    return json_response(runs.public_view(row))


def _event(request: Request) -> Response:
    """com.harvey.generate.requested: 200 (empty body, `X-Harvey-Run-Id`) once the run is final — a
    failed run is final too: it is audited under its run_id; send a new event to try again — and
    409 while another delivery runs it."""
    from harvey import cloudevents_in, pipeline, runs, tenants

    try:
        event = cloudevents_in.parse(request, get_settings().max_request_bytes)
    except cloudevents_in.InvalidEvent as exc:
        raise ApiError(400, str(exc), field=exc.field) from exc
    if event.type != EVENT_REQUESTED:
        raise ApiError(400, f"event type {event.type!r} is not handled here (expected {EVENT_REQUESTED})",
                       field="type")  # fmt: skip
    body = dict(event.data)
    tenant_id = body.pop("tenant_id", None)
    try:
        uuid.UUID(str(tenant_id))
        tenant = tenants.by_id(str(tenant_id))
    except (ValueError, tenants.UnknownTenant) as exc:
        raise ApiError(400, "'tenant_id' must name an existing tenant", field="tenant_id") from exc
    job = _job(body, f"ce:{event.id}")
    run_id = runs.run_id_for_event(event.source, event.id)
    if not runs.create(tenant, job, run_id=run_id, origin="event", status="running"):
        state = runs.take_over(run_id)
        if state == "busy":
            raise ApiError(409, f"run {run_id} is being generated by another delivery", retry_after=30)
        if state == "done":
            row = runs.get(tenant.id, run_id)
            return _ack(run_id, row["status"] if row else "unknown", duplicate=True)
    try:
        result = runs.execute(tenant, job, run_id)
    except pipeline.GenerationError:
        return _ack(run_id, "failed", duplicate=False)
    return _ack(run_id, result["status"], duplicate=False)


def _ack(run_id: str, status: str, *, duplicate: bool) -> Response:
    from harvey import cloudevents_in

    response = cloudevents_in.ack(200, run_id=run_id, run_status=status, duplicate=str(duplicate).lower())
    response.headers["Location"] = f"/runs/{run_id}"
    return response
