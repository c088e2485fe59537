"""Scheduled maintenance: the task registry, its bookkeeping and the small tasks.

Each task takes `Params` and returns a JSON-able dict. `run` wraps every task the same
way: metrics, the last outcome stored in `maintenance_status`, and a
`com.harvey.maintenance.completed` event. Pods scale to zero, so the "last success"
gauge is read back from PostgreSQL on every scrape rather than held only in memory.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harvey import events
from harvey.store import audit, db, documents, ledger, tenants

log = logging.getLogger("harvey.ops.tasks")

EVENT_COMPLETED = "com.harvey.maintenance.completed"
EVENT_CHAIN_BROKEN = "com.harvey.audit.chain_broken"
REINDEX_TABLES = ("run_audit", "audit_checkpoints", "feedback_events")
DEFAULT_BUDGET_S = 120.0
LEASE_S = 3600
ALWAYS_SCOPED = {"purge_document"}
# Fixed forever: a purge's audit run_id derives from what was purged, so a retried purge is audited once.
_PURGE_NAMESPACE = uuid.UUID("0b9e4f43-5c4e-4d35-8a63-9b1f0f2c7d10")

RUNS = Counter("harvey_maintenance_runs_total", "Maintenance task invocations", ["task", "outcome"])


class TaskBusy(Exception):
    """Another delivery of the same event is running the task (409: the broker retries later)."""


class TaskError(ValueError):
    """A task request that can never succeed as given (HTTP 400, final for a broker)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Params:
    dry_run: bool = False
    tenant: tenants.Tenant | None = None
    document_id: str | None = None
    budget_s: float = DEFAULT_BUDGET_S

    def tenant_ids(self) -> list[str]:
        if self.tenant:
            return [self.tenant.id]
        return tenants.all_ids()


class TaskRequest(BaseModel):
    """A maintenance event's data: which task, on what, how far."""

    model_config = ConfigDict(strict=True, extra="forbid")

    task: str = Field(min_length=1, description="retention, reindex, purge_document, verify_audit, golden_eval, …")
    dry_run: bool = False
    tenant: str | None = Field(None, description="a tenant name (or tenant_id); all tenants when absent")
    tenant_id: str | None = None
    document_id: str | None = Field(None, min_length=1, description="for purge_document")
    budget_s: float = Field(DEFAULT_BUDGET_S, gt=0, le=3600, description="seconds the task may spend")


def params_from(data: dict[str, Any]) -> tuple[str, Params]:
    """(task, Params) from a ping's JSON data; TaskError names the bad field."""
    from harvey.schemas import describe

    try:
        parsed = TaskRequest.model_validate(data)
    except ValidationError as exc:
        field, message = describe(exc)
        if field == "task":
            message = f"{message}: one of {', '.join(sorted(TASKS))}"
        raise TaskError(field, message) from None
    _known(parsed.task)
    return parsed.task, Params(parsed.dry_run, _tenant(data), parsed.document_id, parsed.budget_s)


def _tenant(data: dict[str, Any]) -> tenants.Tenant | None:
    try:
        if data.get("tenant_id") is not None:
            uuid.UUID(str(data["tenant_id"]))
            return tenants.by_id(str(data["tenant_id"]))
        if data.get("tenant") is not None:
            return tenants.by_name(str(data["tenant"]))
    except ValueError as exc:
        raise TaskError("tenant_id", "'tenant_id' must be a UUID") from exc
    except tenants.UnknownTenant as exc:
        raise TaskError("tenant", str(exc)) from exc
    return None


def _known(task: str) -> None:
    if task not in TASKS:
        RUNS.labels(task="unknown", outcome="rejected").inc()
        raise TaskError("task", f"unknown task {task!r}: one of {', '.join(sorted(TASKS))}")


def run_once(event: ledger.EventKey, task: str, params: Params) -> bool:
    """Run the event's task once however often it is delivered; True when it was a redelivery of a
    finished one. The claim on source + id has a lease, so a holder that died frees it in time."""
    try:
        return ledger.once(event, LEASE_S, lambda: run(task, params))
    except ledger.Busy as exc:
        raise TaskBusy(str(exc)) from None


def run(task: str, params: Params) -> dict[str, Any]:
    """Run one task and account for it; TaskError for an unknown task or bad parameters."""
    _known(task)
    started = time.monotonic()
    try:
        body = TASKS[task](params)
    except TaskError:
        RUNS.labels(task=task, outcome="rejected").inc()
        raise
    except Exception as exc:
        RUNS.labels(task=task, outcome="failed").inc()
        _store_failure(task, exc)
        raise
    result = {
        "task": task,
        "dry_run": params.dry_run,
        **body,
        "seconds": round(time.monotonic() - started, 3),
    }
    outcome = "dry_run" if params.dry_run else "succeeded" if body.get("complete", True) else "partial"
    if outcome == "succeeded" and (params.tenant is None or task in ALWAYS_SCOPED):
        # "Last success" means the scheduled, all-tenant job: an operator's one-tenant run must not
        # hide that the nightly one has stopped (or clear a broken-chain alert for other tenants).
        _store_success(task, result)
    RUNS.labels(task=task, outcome=outcome).inc()
    events.emit(EVENT_COMPLETED, {**result, "outcome": outcome}, subject=task)
    log.info("maintenance task finished", extra={"task": task, "outcome": outcome})
    return result


def _store_success(task: str, result: dict[str, Any]) -> None:
    db.query(
        "INSERT INTO maintenance_status (task, last_success_at, last_result) VALUES (:task, now(), "
        "CAST(:result AS jsonb)) ON CONFLICT (task) DO UPDATE SET last_success_at = "
        "EXCLUDED.last_success_at, "
        "last_result = EXCLUDED.last_result",
        task=task,
        result=db.jsonb(result),
    )
    _seen[task] = time.time()


def _store_failure(task: str, exc: Exception) -> None:
    try:
        db.query(
            "INSERT INTO maintenance_status (task, last_failure_at, last_error) VALUES (:task, now(), "
            ":error) "
            "ON CONFLICT (task) DO UPDATE SET last_failure_at = now(), last_error = EXCLUDED.last_error",
            task=task,
            error=f"{type(exc).__name__}: {exc}"[:2000],
        )
    except Exception:  # noqa: BLE001 - the database may be why the task failed
        log.warning("could not store the failure of a maintenance task", extra={"task": task})


def status() -> list[dict[str, Any]]:
    return db.query("SELECT * FROM maintenance_status ORDER BY task")


# In-process values, used when the database cannot be read at scrape time.
_seen: dict[str, float] = {}
_chain_broken: list[int] = [0]


def stored_status() -> tuple[dict[str, float], int | None]:
    """(last success per task, audit chain broken 0/1) as PostgreSQL has them, for the scrape-time
    collector (`metrics.export_stored_status`): a fresh pod reports what happened before it."""
    last = dict(_seen)
    broken: int | None = _chain_broken[0]
    try:
        for row in status():
            if row["last_success_at"] is not None:
                last[row["task"]] = max(last.get(row["task"], 0.0), row["last_success_at"].timestamp())
            if row["task"] == "verify_audit" and row["last_result"] is not None:
                broken = 0 if row["last_result"].get("ok", True) else 1
    except Exception:  # noqa: BLE001 - a scrape must not fail because the database is away
        log.warning("maintenance status unreadable; exporting in-process values")
    return last, broken


def reindex(params: Params) -> dict[str, Any]:
    """REINDEX … CONCURRENTLY: rebuilds bloated indexes without blocking writes (never in a transaction)."""
    indexes = db.query(
        "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = ANY(:tables) ORDER BY tablename, indexname",
        tables=list(REINDEX_TABLES),
    )
    if not params.dry_run:
        import pg8000.native

        # Its own autocommit connection without the socket timeout: a rebuild may take minutes.
        con = pg8000.native.Connection(**{**db.connect_params(db.database_url()), "timeout": None})
        try:
            for table in REINDEX_TABLES:
                con.run(f"REINDEX TABLE CONCURRENTLY {table}")  # noqa: S608 - names from the constant above
        finally:
            con.close()
    return {"tables": list(REINDEX_TABLES), "indexes": [r["indexname"] for r in indexes]}


def purge_document(params: Params) -> dict[str, Any]:
    """Remove a document's chunks from the index, mark it purged, audit it, invalidate the cache.

    The audit row comes first (written once: its run_id derives from what is purged), then the chunks
    and the row change together under the document's lock, so an upload being indexed meanwhile
    cannot bring chunks back (its worker sees the purge and stops)."""
    from harvey.config import get_settings
    from harvey.search import cache
    from harvey.search.ingest import LOCK_WAIT_S
    from harvey.search.retrieval import open_index

    if params.tenant is None:
        raise TaskError("tenant", "purge_document needs 'tenant' (or 'tenant_id')")
    if not params.document_id:
        raise TaskError("document_id", "purge_document needs 'document_id'")
    tenant, document_id = params.tenant, params.document_id
    doc = documents.get(tenant.id, document_id)
    if doc is None:
        raise TaskError("document_id", f"tenant {tenant.name} has no document {document_id!r}")
    summary = {"tenant_id": tenant.id, "document_id": document_id, "chunk_count": doc.chunks}
    if params.dry_run:
        return {**summary, "status": _stored_status(doc.status)}
    if doc.status == "deleted":
        open_index().delete_document(tenant.id, document_id)
        return {**summary, "status": "purged", "already_purged": True}
    now = datetime.now(UTC)
    what = {
        "document_id": document_id,
        "content_hash": doc.content_hash,
        "chunk_count": doc.chunks,
        "indexed_at": doc.updated_at.isoformat(),
    }
    record = audit.RunRecord(
        run_id=str(uuid.uuid5(_PURGE_NAMESPACE, f"{tenant.id}\x00{audit.canonical_json(what)}")),
        tenant_id=tenant.id,
        task="maintenance:purge_document",
        prompt_version=get_settings().prompt_version,
        input_hash=audit.sha256_text(audit.canonical_json(what)),
        started_at=now,
        ended_at=now,
        success=True,
        user_id="maintenance",
        policy_snapshot={"purge": what},
    )
    row = audit.write(record)
    try:
        with documents.locked(tenant.id, document_id, LOCK_WAIT_S):
            open_index().delete_document(tenant.id, document_id)
            documents.purge(tenant.id, document_id)
    except documents.DocumentBusy as exc:
        raise TaskBusy(str(exc)) from None
    cache.bump_generation(tenant.id)
    return {
        **summary,
        "status": "purged",
        "audit_run_id": str(row["run_id"]),
        "audit_seq": row["seq"],
        "audit_row_hash": row["row_hash"],
    }


def _stored_status(shown: str) -> str:
    return "purged" if shown == "deleted" else shown


def requeue_stale_documents(params: Params) -> dict[str, Any]:
    """Uploads left queued or processing past their lease (their pod died) go back to the ingest
    function, or end as failed after too many tries."""
    from harvey.search import ingest

    return ingest.requeue_stale(params.tenant_ids(), dry_run=params.dry_run)


def verify_audit(params: Params) -> dict[str, Any]:
    """Check every tenant's chain; a break is an event and `harvey_audit_chain_broken` = 1."""
    names = {str(r["id"]): r["name"] for r in db.query("SELECT id, name FROM tenants")}
    broken = []
    rows = 0
    for tenant_id in params.tenant_ids():
        report = audit.verify(tenant_id)
        rows += report.rows_checked
        if not report.ok:
            entry = {"tenant_id": tenant_id, "tenant": names.get(tenant_id), "problems": report.problems[:50]}
            broken.append(entry)
            events.emit(EVENT_CHAIN_BROKEN, entry, subject=tenant_id)
            log.error("audit chain broken", extra={"tenant_id": tenant_id, "problems": len(report.problems)})
    if broken:
        _chain_broken[0] = 1
    elif params.tenant is None:
        _chain_broken[0] = 0
    return {
        "tenants_checked": len(params.tenant_ids()),
        "rows_checked": rows,
        "ok": not broken,
        "broken": broken,
    }


def retention(params: Params) -> dict[str, Any]:
    from harvey.ops import retention as policy

    return policy.run(
        params.tenant_ids(), dry_run=params.dry_run, budget_s=params.budget_s, whole_tables=params.tenant is None
    )


def golden_eval(params: Params) -> dict[str, Any]:
    from harvey.ops import golden

    return golden.evaluate(params.tenant, dry_run=params.dry_run, budget_s=params.budget_s)


def fail_stale_runs(params: Params) -> dict[str, Any]:
    """Runs left queued or running past their lease (their pod died) end as failed, audited."""
    from harvey.drafting import runs

    if params.dry_run:
        return {"stale_runs": runs.count_stale(params.tenant_ids())}
    return runs.fail_stale(params.tenant_ids())


TASKS: dict[str, Callable[[Params], dict[str, Any]]] = {
    "retention": retention,
    "reindex": reindex,
    "purge_document": purge_document,
    "verify_audit": verify_audit,
    "golden_eval": golden_eval,
    "fail_stale_runs": fail_stale_runs,
    "requeue_stale_documents": requeue_stale_documents,
}
