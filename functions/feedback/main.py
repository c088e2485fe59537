"""`feedback`: lawyers rate and correct runs; summaries and analytics per tenant.

POST /                         {"run_id", "rating", …} with a Bearer key (Idempotency-Key optional)
POST /  (CloudEvent)           com.harvey.feedback.submitted, binary or structured, tenant_id in data
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
from harvey import feedback as library
from harvey import logs
from harvey.config import get_settings
from harvey.http import (
    ApiError,
    bearer_tenant,
    endpoint,
    event_tenant,
    inbound_event,
    json_response,
    read_json,
    store_checks,
)

logs.setup(get_settings().log_level)
EVENT_SUBMITTED = "com.harvey.feedback.submitted"


@functions_framework.http
@endpoint("feedback", checks=store_checks("postgres"))
def feedback(request: Request) -> Response:
    from harvey import cloudevents_in
    from harvey.db import DatabaseUnavailable

    parts = [p for p in request.path.split("/") if p]
    try:
        if not parts and request.method == "POST":
            return _event(request) if cloudevents_in.is_cloudevent(request) else _submit(request)
        if request.method == "GET" and len(parts) == 3 and parts[0] == "runs" and parts[2] == "summary":
            return json_response(library.summary(bearer_tenant(request).id, parts[1]))
        if request.method == "GET" and parts == ["analytics"]:
            tenant = bearer_tenant(request)
            return json_response(library.analytics(tenant.id, library.parse_since(request.args.get("since"))))
    except DatabaseUnavailable as exc:
        raise ApiError(503, f"the database is unreachable: {exc}", retry_after=10) from exc
    except library.InvalidFeedback as exc:
        raise ApiError(400, str(exc), field=exc.field) from exc
    except library.RunNotFound as exc:
        raise ApiError(404, str(exc)) from exc
    except library.RunNotFinished as exc:
        raise ApiError(409, str(exc), retry_after=5) from exc
    if not parts and request.method != "POST":
        raise ApiError(405, "use POST / to send feedback")
    raise ApiError(404, f"no route {request.method} {request.path}")


def _submit(request: Request) -> Response:
    tenant = bearer_tenant(request)
    body = read_json(request, get_settings().max_request_bytes)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise ApiError(400, "'Idempotency-Key' must be 1–200 characters", field="Idempotency-Key")
    try:
        stored = library.record(tenant.id, body, dedupe_key=f"idem:{key}" if key else None,
                                same_body_required=True)  # fmt: skip
    except library.IdempotencyConflict as exc:
        raise ApiError(422, str(exc), field="Idempotency-Key") from exc
    headers = None if stored.created else {"Idempotent-Replayed": "true"}
    return json_response({"id": stored.id, "run_id": body["run_id"]}, 201 if stored.created else 200, headers)


def _event(request: Request) -> Response:
    from harvey import cloudevents_in

    event = inbound_event(request, (EVENT_SUBMITTED,))
    body = dict(event.data)
    tenant = event_tenant(body)
    stored = library.record(tenant.id, body, dedupe_key=f"ce:{event.source} {event.id}")
    duplicate = "false" if stored.created else "true"
    return cloudevents_in.ack(201 if stored.created else 200, feedback_id=stored.id, duplicate=duplicate)
