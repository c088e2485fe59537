"""`maintenance`: scheduled tasks, triggered by PingSource CloudEvents.

POST /  (CloudEvent)  type dev.knative.sources.ping (or com.harvey.maintenance.requested),
                      data {"task": retention|reindex|purge_document|verify_audit|golden_eval,
                            "dry_run"?, "tenant"? | "tenant_id"?, "document_id"?, "budget_s"?}
GET  /healthz, GET /metrics   (an @http function, so probes get their GET routes)

Each event is done once however often delivered (ledger on source + id): 200 with an
empty body (`X-Harvey-Duplicate` says whether it was a redelivery; the result is in
`maintenance_status` and the com.harvey.maintenance.completed event), 400 for an unknown
task or bad data (final), 409 while another delivery of the same event runs, 503 when
PostgreSQL is down (the broker retries).
"""

from __future__ import annotations

import logging

import functions_framework
from flask import Request, Response
from harvey import logs
from harvey import maintenance as tasks
from harvey.config import get_settings
from harvey.http import ApiError, endpoint, inbound_event, store_checks

logs.setup(get_settings().log_level)
log = logging.getLogger("harvey.maintenance")
EVENT_TYPES = ("dev.knative.sources.ping", "com.harvey.maintenance.requested")
LEASE_S = 3600


@functions_framework.http
@endpoint("maintenance", checks=store_checks("postgres"))
def maintenance(request: Request) -> Response:
    from harvey import cloudevents_in
    from harvey.db import DatabaseUnavailable

    if request.path.rstrip("/"):
        raise ApiError(404, f"no route {request.method} {request.path}")
    if request.method != "POST":
        raise ApiError(405, "POST a CloudEvent to / to run a maintenance task")
    if not cloudevents_in.is_cloudevent(request):
        raise ApiError(400, "expected a CloudEvent (binary or structured mode)", field="body")
    event = inbound_event(request, EVENT_TYPES)
    try:
        task, params = tasks.params_from(event.data)
        return _run_once(event, task, params)
    except tasks.TaskError as exc:
        raise ApiError(400, str(exc), field=exc.field) from exc
    except DatabaseUnavailable as exc:
        raise ApiError(503, f"the database is unreachable: {exc}", retry_after=30) from exc


def _run_once(event, task: str, params: tasks.Params) -> Response:
    from harvey import cloudevents_in

    claim = cloudevents_in.claim(event, LEASE_S)
    if claim.state == "done":
        return cloudevents_in.ack(200, task=task, duplicate="true")
    if claim.state == "busy":
        raise ApiError(409, "this event is being processed by another delivery", retry_after=30)
    try:
        result = tasks.run(task, params)
    except BaseException:
        try:
            cloudevents_in.release(event)
        except Exception:  # noqa: BLE001 - the lease frees the claim later; report the first error
            log.warning("could not release the event claim", extra={"event_id": event.id})
        raise
    cloudevents_in.complete(event, result)
    return cloudevents_in.ack(200, task=task, duplicate="false")
