"""`ingest`: documents in (PDF, DOCX, HTML, text, Markdown), parsed, chunked and indexed for a tenant.

POST   /documents        the file as the body with its Content-Type, or multipart/form-data with `file`
                         (X-Document-Id, X-Document-Title); 202 + Location /documents/{id}, 200 if unchanged
GET    /documents        ?status=queued|processing|indexed|failed|deleted&cursor=…&limit=…
GET    /documents/{id}   status, pages, OCR pages, chunks, or why it failed
DELETE /documents/{id}   chunks out of the index, text dropped, audited
POST   /  (CloudEvent)   com.harvey.document.submitted from an authenticated sender (once per event)
GET    /healthz, /metrics, /openapi.json   (the whole contract: docs/openapi/ingest.json)
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response
from harvey.api.ingest import API
from harvey.edge import http

http.boot()


@functions_framework.http
def ingest(request: Request) -> Response:
    return API.handle(request)
