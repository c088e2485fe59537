"""`maintenance`: scheduled tasks, triggered by PingSource CloudEvents from an authenticated sender.

POST /  (CloudEvent)  data {"task": retention|reindex|purge_document|verify_audit|golden_eval|fail_stale_runs|
                            requeue_stale_documents, …}
                      done once per event however often delivered (200, empty body; 409 while running)
GET  /healthz, /metrics, /openapi.json   (the whole contract: docs/openapi/maintenance.json)
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response
from harvey.api.maintenance import API
from harvey.edge import http

http.boot()


@functions_framework.http
def maintenance(request: Request) -> Response:
    return API.handle(request)
