"""The feedback function: lawyers rate and correct runs; summaries and analytics per tenant."""

from __future__ import annotations

from typing import Any

from flask import Request, Response
from pydantic import BaseModel

from harvey.config import get_settings
from harvey.edge import http
from harvey.store.feedback import FeedbackRequest

EVENT_SUBMITTED = "com.harvey.feedback.submitted"


class Stored(BaseModel):
    """The feedback row that now exists."""

    id: str
    run_id: str


class Summary(BaseModel):
    """A run's feedback, summed up."""

    run_id: str
    count: int
    mean_rating: float | None
    ratings: dict[str, int]
    edited: int
    error_labels: list[dict[str, Any]]
    missing_sources: list[dict[str, Any]]
    tags: list[dict[str, Any]]


class Analytics(BaseModel):
    """Feedback per document type since a moment."""

    since: str
    total: int
    doc_types: dict[str, dict[str, Any]]


def _post(request: Request) -> Response:
    from harvey.edge import inbound
    from harvey.store import feedback

    if inbound.is_cloudevent(request):
        event = http.inbound_event(request, (EVENT_SUBMITTED,))
        body = dict(event.data)
        stored = feedback.record(http.event_tenant(body).id, body, dedupe_key=f"ce:{event.source} {event.id}")
        duplicate = "false" if stored.created else "true"
        return inbound.ack(201 if stored.created else 200, feedback_id=stored.id, duplicate=duplicate)
    tenant = http.bearer_tenant(request)
    body = http.read_json(request, get_settings().max_request_bytes)
    key = http.header(request, "Idempotency-Key")
    stored = feedback.record(tenant.id, body, dedupe_key=f"idem:{key}" if key else None, same_body_required=True)
    headers = None if stored.created else {"Idempotent-Replayed": "true"}
    answer = Stored(id=stored.id, run_id=body["run_id"])
    return http.json_response(answer.model_dump(), 201 if stored.created else 200, headers)


def _summary(request: Request, run_id: str) -> Response:
    from harvey.store import feedback

    return http.json_response(feedback.summary(http.bearer_tenant(request).id, run_id))


def _analytics(request: Request) -> Response:
    from harvey.store import feedback

    tenant = http.bearer_tenant(request)
    return http.json_response(feedback.analytics(tenant.id, feedback.parse_since(request.args.get("since"))))


def _review_page(request: Request, run_id: str) -> Response:
    from harvey.review import access

    html, headers = access.page(run_id, request.args.get("token"))
    return Response(html, headers=headers)


def _review_post(request: Request, run_id: str) -> Response:
    from harvey.review import access

    token = (request.headers.get("Authorization") or "").removeprefix("Bearer ").strip() or None
    access.tenant_of(token, run_id)  # 401/403 before the body is read
    body = http.read_json(request, get_settings().max_request_bytes)
    stored = access.record(run_id, token, body, http.header(request, "Idempotency-Key"))
    headers = None if stored.created else {"Idempotent-Replayed": "true"}
    return http.json_response(Stored(id=stored.id, run_id=run_id).model_dump(), 201 if stored.created else 200, headers)


_REVIEW_ERRORS = {
    401: "No token, or a tampered, foreign or malformed one.",
    403: "The link has expired: ask for a new one (`harvey review link`).",
    404: "The run no longer exists.",
    409: "The run is still running, or has no document (withheld).",
}
API = http.Function(
    name="feedback",
    title="Harvey feedback",
    description="Lawyers' ratings, error spans, missing sources and edits of runs, stored once however "
    "often they arrive, and summarised per run and per document type.",
    routes=http.Routes(
        http.Route(
            "POST",
            "/",
            _post,
            "Record feedback on a run (Idempotency-Key optional), or take a feedback.submitted CloudEvent.",
            auth=("bearer", "event"),
            body=FeedbackRequest,
            responses={
                201: Stored,
                200: "Already recorded (a replayed Idempotency-Key or a redelivered event).",
                400: "A field is missing or invalid (`error.field` names it), or the CloudEvent is malformed.",
                404: "No run with this id for this tenant (yet: an event may arrive before its run).",
                408: "The body did not arrive in time.",
                409: "The run is still running: its text does not exist yet.",
                413: "The body is too large.",
                422: "The Idempotency-Key was used with a different body.",
            },
        ),
        http.Route(
            "GET",
            "/runs/<run_id>/summary",
            _summary,
            "Count, mean rating, error labels and missing sources of a run's feedback.",
            responses={200: Summary, 404: "No run with this id for this tenant."},
        ),
        http.Route(
            "GET",
            "/analytics",
            _analytics,
            "Feedback per document type since a date.",
            query={"since": "ISO date or datetime (default: 30 days ago)"},
            responses={200: Analytics, 400: "`since` is not an ISO date or datetime."},
        ),
        http.Route(
            "GET",
            "/review/<run_id>",
            _review_page,
            "The review page of a run (Portuguese, no external resources, strict CSP), from its signed link.",
            auth=("review",),
            produces={"text/html": "the page"},
            query={"token": "the link's signed token"},
            responses={200: "The page.", **_REVIEW_ERRORS},
        ),
        http.Route(
            "POST",
            "/review/<run_id>/feedback",
            _review_post,
            "What a lawyer marked on the review page, stored as ordinary feedback on that run (the link's "
            "token as `Authorization: Bearer`).",
            auth=("review",),
            body=FeedbackRequest,
            responses={
                201: Stored,
                200: "Already recorded (a replayed Idempotency-Key).",
                400: "A field is invalid, or `run_id` is not the link's run.",
                413: "The body is too large.",
                422: "The Idempotency-Key was used with a different body.",
                **_REVIEW_ERRORS,
            },
        ),
    ),
    checks=http.store_checks("postgres"),
)
