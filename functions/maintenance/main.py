"""`maintenance`: scheduled tasks, triggered by PingSource CloudEvents from an authenticated sender.

POST /  (CloudEvent)  type dev.knative.sources.ping (or com.harvey.maintenance.requested),
                      data {"task": retention|reindex|purge_document|verify_audit|golden_eval|fail_stale_runs,
                            "dry_run"?, "tenant"? | "tenant_id"?, "document_id"?, "budget_s"?}
GET  /healthz, GET /metrics   (an @http function, so probes get their GET routes)

Each event is done once however often delivered (ledger on source + id): 200 with an
empty body (`X-Harvey-Duplicate` says whether it was a redelivery; the result is in
`maintenance_status` and the com.harvey.maintenance.completed event), 400 for an unknown
task or bad data (final), 409 while another delivery of the same event runs, 503 when
PostgreSQL is down (the broker retries).
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response
from harvey import logs
from harvey.config import get_settings
from harvey.edge import http
from harvey.edge.eventauth import warn_if_insecure
from harvey.ops import tasks
from werkzeug.exceptions import HTTPException

logs.setup(get_settings().log_level)
warn_if_insecure()
EVENT_TYPES = ("dev.knative.sources.ping", "com.harvey.maintenance.requested")


def _post(request: Request) -> Response:
    from harvey.edge import inbound

    if not inbound.is_cloudevent(request):
        raise http.ApiError(400, "expected a CloudEvent (binary or structured mode)", field="body")
    event = http.inbound_event(request, EVENT_TYPES)
    task, params = tasks.params_from(event.data)
    duplicate = tasks.run_once(event.key, task, params)
    return inbound.ack(200, task=task, duplicate=str(duplicate).lower())


ROUTES = http.Routes(("POST", "/", _post))
functions_framework.errorhandler(HTTPException)(http.framework_error)
CHECKS = http.store_checks("postgres")


@functions_framework.http
def maintenance(request: Request) -> Response:
    return http.serve("maintenance", ROUTES, request, CHECKS)
