"""The maintenance function: scheduled tasks, triggered by PingSource CloudEvents."""

from __future__ import annotations

from flask import Request, Response

from harvey import metrics
from harvey.edge import http
from harvey.ops import tasks
from harvey.ops.tasks import TaskRequest

EVENT_TYPES = ("dev.knative.sources.ping", "com.harvey.maintenance.requested")


def _post(request: Request) -> Response:
    from harvey.edge import inbound

    if not inbound.is_cloudevent(request):
        raise http.ApiError(400, "expected a CloudEvent (binary or structured mode)", field="body")
    event = http.inbound_event(request, EVENT_TYPES)
    task, params = tasks.params_from(event.data)
    duplicate = tasks.run_once(event.key, task, params)
    return inbound.ack(200, task=task, duplicate=str(duplicate).lower())


API = http.Function(
    name="maintenance",
    title="Harvey maintenance",
    description="Retention, reindex, purge, audit-chain verification, stale-run recovery and the golden-set "
    "evaluation, each done once per event however often it is delivered.",
    routes=http.Routes(
        http.Route(
            "POST",
            "/",
            _post,
            "Run the task a CloudEvent names; the answer's X-Harvey-Task and X-Harvey-Duplicate headers say what ran.",
            auth=("event",),
            body=TaskRequest,
            responses={
                200: "Done, or a redelivery of a task already done (empty body: a broker reads a reply as an event).",
                400: "Not a CloudEvent, an unknown task or bad data (final).",
                409: "Another delivery of the same event is running the task (the broker retries).",
            },
        ),
    ),
    checks=http.store_checks("postgres"),
)
metrics.export_stored_status(tasks.stored_status)
