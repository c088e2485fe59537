"""`feedback`: lawyers rate and correct runs; summaries and analytics per tenant.

POST /                         {"run_id", "rating", …} with a Bearer key (Idempotency-Key optional)
POST /  (CloudEvent)           com.harvey.feedback.submitted from an authenticated sender, tenant_id in data
GET  /runs/{run_id}/summary    count, mean rating, error labels, missing sources (Bearer key)
GET  /analytics?since=ISO      per doc type since a date or datetime (Bearer key)
GET  /healthz, GET /metrics

CloudEvent answers follow Knative's delivery contract: 201/200 taken (empty body; a broker
treats a non-CloudEvent reply body as an error; `X-Harvey-Feedback-Id`, `X-Harvey-Duplicate`),
400 never retry, 404 (run not there yet: out-of-order delivery), 409 (run still running)
and 503 retry.
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response
from harvey import logs
from harvey.config import get_settings
from harvey.edge import http
from harvey.edge.eventauth import warn_if_insecure
from harvey.store import feedback as library
from werkzeug.exceptions import HTTPException

logs.setup(get_settings().log_level)
warn_if_insecure()
EVENT_SUBMITTED = "com.harvey.feedback.submitted"


def _post(request: Request) -> Response:
    from harvey.edge import inbound

    if inbound.is_cloudevent(request):
        event = http.inbound_event(request, (EVENT_SUBMITTED,))
        body = dict(event.data)
        stored = library.record(http.event_tenant(body).id, body, dedupe_key=f"ce:{event.source} {event.id}")
        duplicate = "false" if stored.created else "true"
        return inbound.ack(201 if stored.created else 200, feedback_id=stored.id, duplicate=duplicate)
    tenant = http.bearer_tenant(request)
    body = http.read_json(request, get_settings().max_request_bytes)
    key = http.header(request, "Idempotency-Key")
    stored = library.record(tenant.id, body, dedupe_key=f"idem:{key}" if key else None, same_body_required=True)
    headers = None if stored.created else {"Idempotent-Replayed": "true"}
    return http.json_response({"id": stored.id, "run_id": body["run_id"]}, 201 if stored.created else 200, headers)


def _summary(request: Request, run_id: str) -> Response:
    return http.json_response(library.summary(http.bearer_tenant(request).id, run_id))


def _analytics(request: Request) -> Response:
    tenant = http.bearer_tenant(request)
    return http.json_response(library.analytics(tenant.id, library.parse_since(request.args.get("since"))))


ROUTES = http.Routes(
    ("POST", "/", _post),
    ("GET", "/runs/<run_id>/summary", _summary),
    ("GET", "/analytics", _analytics),
)
functions_framework.errorhandler(HTTPException)(http.framework_error)
CHECKS = http.store_checks("postgres")


@functions_framework.http
def feedback(request: Request) -> Response:
    return http.serve("feedback", ROUTES, request, CHECKS)
