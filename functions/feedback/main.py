"""`feedback`: lawyers rate and correct runs; summaries and analytics per tenant.

POST /                       {"run_id", "rating", …} with a Bearer key (Idempotency-Key optional)
POST /  (CloudEvent)         com.harvey.feedback.submitted from an authenticated sender
GET  /runs/{run_id}/summary  count, mean rating, error labels, missing sources
GET  /analytics?since=ISO    per document type
GET  /healthz, /metrics, /openapi.json   (the whole contract: docs/openapi/feedback.json)
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response
from harvey.api.feedback import API
from harvey.edge import http

http.boot()


@functions_framework.http
def feedback(request: Request) -> Response:
    return API.handle(request)
