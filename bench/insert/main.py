"""The feedback benchmark's yardstick: a minimal functions-framework function doing one INSERT per request.

No auth, no validation, one pg8000 connection per server thread: what any feedback endpoint must at least do.
"""

import json
import os
import threading
import uuid
from urllib.parse import urlparse

import functions_framework
import pg8000.native

_local = threading.local()
URL = urlparse(os.environ["DATABASE_URL"])
TENANT = os.environ["BENCH_TENANT_ID"]


def _con() -> pg8000.native.Connection:
    con = getattr(_local, "con", None)
    if con is None:
        con = pg8000.native.Connection(
            user=URL.username or "postgres", host=URL.hostname, port=URL.port or 5432, database=URL.path[1:]
        )
        _local.con = con
    return con


@functions_framework.http
def insert(request):
    body = request.get_json()
    feedback_id = str(uuid.uuid4())
    _con().run(
        "INSERT INTO feedback_events (id, tenant_id, run_id, rating, comment, error_spans, missing_sources, tags) "
        "VALUES (CAST(:id AS uuid), CAST(:t AS uuid), CAST(:r AS uuid), :rating, :comment, CAST(:spans AS jsonb), "
        "CAST(:missing AS jsonb), CAST(:tags AS jsonb))",
        id=feedback_id,
        t=TENANT,
        r=body["run_id"],
        rating=body["rating"],
        comment=body.get("comment"),
        spans=json.dumps(body.get("error_spans", [])),
        missing=json.dumps(body.get("missing_sources", [])),
        tags=json.dumps(body.get("tags", [])),
    )
    return {"id": feedback_id, "run_id": body["run_id"]}, 201
