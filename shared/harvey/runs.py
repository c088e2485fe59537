"""Run status in PostgreSQL, so any instance can answer `GET /runs/{run_id}`.

Every run started by the generate function (sync, `Prefer: respond-async`, or the
`com.harvey.generate.requested` CloudEvent) has a `runs` row: queued → running →
succeeded | withheld | failed, with the response once done. The response's
`document_md` is also what feedback spans index into. A `running` row carries a
lease: if the pod running it dies, a redelivered event takes the run over after it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from harvey import db
from harvey.pipeline import GenerateInput, GenerationError
from harvey.tenants import Tenant

log = logging.getLogger("harvey.runs")

LEASE_S = 900
FINAL = ("succeeded", "withheld", "failed")
# Namespace for run ids derived from an event's source + id (fixed forever: changing it remaps runs).
_EVENT_NAMESPACE = uuid.UUID("6f1c1d5e-3b9a-4c37-9a53-2f0f6d1e8a41")


def run_id_for_event(source: str, event_id: str) -> str:
    """The same event, however often delivered, always maps to the same run."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{source}\x00{event_id}"))


def _request(job: GenerateInput) -> dict[str, Any]:
    return {**job.canonical(), "user_id": job.user_id}


def job_from_request(request: dict[str, Any]) -> GenerateInput:
    return GenerateInput(**{k: v for k, v in request.items() if k in GenerateInput.__dataclass_fields__})


def create(tenant: Tenant, job: GenerateInput, *, run_id: str, origin: str, status: str = "queued") -> bool:
    """Insert the run's row; False when the run already exists (a redelivery)."""
    row = db.one(
        "INSERT INTO runs (run_id, tenant_id, status, origin, doc_type, request, lease_until) "
        "VALUES (CAST(:run AS uuid), CAST(:tenant AS uuid), :status, :origin, :doc_type, CAST(:request AS "
        "jsonb), "
        "CASE WHEN :status = 'running' THEN now() + make_interval(secs => :lease) END) "
        "ON CONFLICT (run_id) DO NOTHING RETURNING run_id",
        run=run_id, tenant=tenant.id, status=status, origin=origin, doc_type=job.doc_type,
        request=db.jsonb(_request(job)), lease=float(LEASE_S),
    )  # fmt: skip
    return row is not None


def take_over(run_id: str) -> str:
    """For a redelivered event: 'new' if this delivery should run it, else 'done' or 'busy'."""
    row = db.one(
        "UPDATE runs SET status = 'running', lease_until = now() + make_interval(secs => :lease), "
        "updated_at = now() WHERE run_id = CAST(:run AS uuid) AND (status = 'queued' "
        "OR (status = 'running' AND lease_until < now())) RETURNING run_id",
        run=run_id, lease=float(LEASE_S),
    )  # fmt: skip
    if row is not None:
        return "new"
    current = db.one("SELECT status FROM runs WHERE run_id = CAST(:run AS uuid)", run=run_id)
    return "done" if current and current["status"] in FINAL else "busy"


def execute(tenant: Tenant, job: GenerateInput, run_id: str) -> dict[str, Any]:
    """Run the pipeline for an existing row and store the outcome; re-raises GenerationError."""
    from harvey import pipeline

    db.query(
        "UPDATE runs SET status = 'running', lease_until = now() + make_interval(secs => :lease), "
        "updated_at = now() WHERE run_id = CAST(:run AS uuid)",
        run=run_id, lease=float(LEASE_S),
    )  # fmt: skip
    try:
        result = pipeline.run(tenant, job, run_id=run_id)
    except GenerationError as err:
        _finish(run_id, "failed", error={"status": err.status, "message": err.message})
        raise
    document = result.get("document_md")
    _finish(run_id, result["status"], result=result, chars=len(document) if document else None)
    return result


def execute_in_background(tenant: Tenant, job: GenerateInput, run_id: str) -> threading.Thread:
    """`Prefer: respond-async`: at most once — if this pod dies mid-run the row stays `running`
    (its lease expires, nobody retries it). Use the CloudEvent path when a run must not be lost."""

    def work() -> None:
        try:
            execute(tenant, job, run_id)
        except GenerationError:
            pass  # stored on the row and audited
        except Exception:  # noqa: BLE001 - a background thread has nobody to raise to
            log.exception("async run failed", extra={"run_id": run_id})
        finally:
            db.reset()

    thread = threading.Thread(target=work, name=f"run-{run_id[:8]}", daemon=True)
    thread.start()
    return thread


def _finish(run_id: str, status: str, *, result: dict | None = None, error: dict | None = None,
            chars: int | None = None) -> None:  # fmt: skip
    db.query(
        "UPDATE runs SET status = :status, result = CAST(:result AS jsonb), error = CAST(:error AS jsonb), "
        "document_chars = :chars, lease_until = NULL, updated_at = now() WHERE run_id = CAST(:run AS uuid)",
        run=run_id, status=status, result=db.jsonb(result) if result is not None else None,
        error=db.jsonb(error) if error is not None else None, chars=chars,
    )  # fmt: skip


def get(tenant_id: str, run_id: str) -> dict[str, Any] | None:
    """The tenant's run row, or None (also for another tenant's run and for malformed ids)."""
    if not db.is_uuid(run_id):
        return None
    return db.one(
        "SELECT * FROM runs WHERE run_id = CAST(:run AS uuid) AND tenant_id = CAST(:tenant AS uuid)",
        run=run_id, tenant=tenant_id,
    )  # fmt: skip


def public_view(row: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "run_id": str(row["run_id"]), "status": row["status"], "doc_type": row["doc_type"],
        "created_at": row["created_at"], "updated_at": row["updated_at"],
    }  # fmt: skip
    if row["status"] in ("succeeded", "withheld"):
        view["result"] = row["result"]
    if row["status"] == "failed":
        view["error"] = row["error"]
    return view
