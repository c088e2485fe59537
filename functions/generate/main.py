"""`generate`: draft a grounded legal document over HTTP.

POST /               {"doc_type", "task", "facts"?, "parties"?, "top_k"?}  (Bearer API key)
                     200 with the draft; with `Prefer: respond-async`: 202, `Location: /runs/{run_id}`
                     (503 + Retry-After when this instance's async queue is full)
POST /  (CloudEvent) com.harvey.generate.requested, data = tenant_id + the request body, from an
                     authenticated sender; the run_id derives from source + id, so a redelivery
                     maps to the same run: 200 once final, 409 while another delivery runs it
GET  /runs/{run_id}  status queued | running | succeeded | failed | withheld, and the result when done
GET  /healthz        liveness/readiness, no I/O (`?deep=1` checks PostgreSQL and Qdrant)
GET  /metrics        Prometheus exposition
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response
from harvey import logs
from harvey.config import get_settings
from harvey.edge import http, warmup
from harvey.edge.eventauth import warn_if_insecure
from werkzeug.exceptions import HTTPException

logs.setup(get_settings().log_level)
warn_if_insecure()
EVENT_REQUESTED = "com.harvey.generate.requested"


def _post(request: Request) -> Response:
    from harvey.drafting import runs
    from harvey.edge import inbound

    if inbound.is_cloudevent(request):
        event = http.inbound_event(request, (EVENT_REQUESTED,))
        body = dict(event.data)
        outcome = runs.from_event(http.event_tenant(body), body, event.source, event.id)
        response = inbound.ack(
            200, run_id=outcome.run_id, run_status=outcome.status, duplicate=str(outcome.duplicate).lower()
        )
        response.headers["Location"] = f"/runs/{outcome.run_id}"
        return response
    tenant = http.bearer_tenant(request)
    body = http.read_json(request, get_settings().max_request_bytes)
    request_id = http.header(request, "X-Request-Id", max_length=128)
    if "respond-async" in request.headers.get("Prefer", "").lower():
        run_id = runs.start_async(tenant, body, request_id)
        headers = {"Location": f"/runs/{run_id}", "Preference-Applied": "respond-async"}
        return http.json_response({"run_id": run_id, "status": "queued", "location": f"/runs/{run_id}"}, 202, headers)
    return http.json_response(runs.start_sync(tenant, body, request_id))


def _run_status(request: Request, run_id: str) -> Response:
    from harvey.drafting import runs

    row = runs.get(http.bearer_tenant(request).id, run_id)
    if row is None:
        raise http.ApiError(404, f"no run {run_id}")
    return http.json_response(runs.public_view(row))


def _warm_llm() -> None:
    from harvey.drafting import llm

    llm.load()


def _warm_index() -> None:
    from harvey.search.retrieval import open_index

    open_index()


def _close_stale_runs() -> None:
    from harvey.drafting import runs

    runs.fail_stale()


ROUTES = http.Routes(("POST", "/", _post), ("GET", "/runs/<run_id>", _run_status))
functions_framework.errorhandler(HTTPException)(http.framework_error)
CHECKS = http.store_checks("postgres", "qdrant")


@functions_framework.http
def generate(request: Request) -> Response:
    warmup.start(_warm_llm, _warm_index, _close_stale_runs)
    return http.serve("generate", ROUTES, request, CHECKS)
