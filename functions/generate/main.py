"""`generate`: draft a grounded legal document over HTTP or from a CloudEvent.

POST /               {"doc_type", "task", "facts"?, "parties"?, "top_k"?}  (Bearer API key)
                     200 with the draft; `Prefer: respond-async`: 202 + Location /runs/{run_id}
POST /  (CloudEvent) com.harvey.generate.requested from an authenticated sender (done once per event)
GET  /runs/{run_id}  status, and the result once done
GET  /healthz, /metrics, /openapi.json   (the whole contract: docs/openapi/generate.json)
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response
from harvey.api.generate import API
from harvey.edge import http

http.boot()


@functions_framework.http
def generate(request: Request) -> Response:
    return API.handle(request)
