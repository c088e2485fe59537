"""Retention: audit rows after 7 years (LGPD forensic horizon), temporary data after 30 days.

Deletes run in small batches, each its own short transaction that locks only the rows
it deletes (`FOR UPDATE SKIP LOCKED`), so concurrent inserts never wait behind it; a
time budget bounds one invocation and the next one simply continues (the cut-offs are
recomputed, nothing else is remembered). Audit rows go as a contiguous prefix of each
tenant's chain: the batch first checks the rows it removes still link, then moves the
tenant's checkpoint to the last of them in the same transaction, so `audit.verify`
still proves everything that is left — and a tampered old row is never laundered away.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from harvey.store import audit, db

AUDIT_RETENTION = "7 years"
TEMP_RETENTION = "30 days"
LEDGER_RETENTION = "30 days"
AUDIT_BATCH = 500
BATCH = 5000


@dataclass
class Budget:
    seconds: float
    started: float = field(default_factory=time.monotonic)

    @property
    def spent(self) -> bool:
        return time.monotonic() - self.started >= self.seconds


def cutoffs() -> dict[str, Any]:
    """Fixed for one invocation, taken from the database clock."""
    row = db.one(
        f"SELECT now() - interval '{AUDIT_RETENTION}' AS audit, now() - interval '{TEMP_RETENTION}' AS temp, "  # noqa: S608
        f"now() - interval '{LEDGER_RETENTION}' AS ledger"
    )
    assert row is not None
    return row


def run(tenant_ids: list[str], *, dry_run: bool, budget_s: float, whole_tables: bool) -> dict[str, Any]:
    """Prune the tenants' audit chains; also temp_data and the event ledger when whole_tables."""
    limits = cutoffs()
    budget = Budget(budget_s)
    if dry_run:
        return _dry_run(tenant_ids, limits, whole_tables)
    result: dict[str, Any] = {
        "cutoffs": {k: v.isoformat() for k, v in limits.items()},
        "audit_rows_deleted": 0,
        "feedback_deleted": 0,
        "blocked": [],
        "temp_data_deleted": 0,
        "event_ledger_deleted": 0,
        "complete": True,
    }
    for tenant_id in tenant_ids:
        done, blocked = _prune_chain(tenant_id, limits["audit"], budget, result)
        if blocked:
            result["blocked"].append({"tenant_id": tenant_id, **blocked})
        if not done:
            result["complete"] = False
            return result
    scope = "" if whole_tables else "AND tenant_id = ANY(CAST(:tenants AS uuid[]))"
    tables = [("temp_data", limits["temp"], scope)]
    if whole_tables:
        tables.append(("event_ledger", limits["ledger"], "AND status = 'done'"))
    for table, cutoff, extra in tables:
        if not _delete_expired(table, cutoff, extra, tenant_ids, budget, result):
            result["complete"] = False
            return result
    return result


def _prune_chain(tenant_id: str, cutoff, budget: Budget, result: dict[str, Any]) -> tuple[bool, dict | None]:
    """(finished, problem that stops pruning) for one tenant's chain."""
    while True:
        if budget.spent:
            return False, None
        deleted, blocked = _prune_batch(tenant_id, cutoff, result)
        if blocked or deleted < AUDIT_BATCH:
            return True, blocked


def _prune_batch(tenant_id: str, cutoff, result: dict[str, Any]) -> tuple[int, dict | None]:
    with db.transaction():
        checkpoint = db.one(
            "SELECT seq, row_hash FROM audit_checkpoints WHERE tenant_id = CAST(:t AS uuid) FOR UPDATE",
            t=tenant_id,
        )
        expected_seq = checkpoint["seq"] + 1 if checkpoint else 1
        expected_prev = checkpoint["row_hash"] if checkpoint else audit.GENESIS
        rows = db.query(
            "SELECT * FROM run_audit WHERE tenant_id = CAST(:t AS uuid) AND seq >= :seq AND created_at < "
            ":cutoff "
            "ORDER BY seq LIMIT :batch FOR UPDATE SKIP LOCKED",
            t=tenant_id,
            seq=expected_seq,
            cutoff=cutoff,
            batch=AUDIT_BATCH,
        )
        prefix = []
        blocked = None
        for row in rows:
            problem = (
                "missing"
                if row["seq"] != expected_seq
                else "broken_link"
                if row["prev_hash"] != expected_prev
                else "altered"
                if audit.row_hash(row) != row["row_hash"]
                else None
            )
            if problem:
                # Stop here, never leave a hole. A row a concurrent pruner holds looks "missing" too:
                # only a row that is really gone (or altered, or re-linked) blocks the chain.
                if problem != "missing" or not _seq_exists(tenant_id, expected_seq):
                    blocked = {"seq": expected_seq, "problem": problem}
                break
            prefix.append(row)
            expected_seq, expected_prev = row["seq"] + 1, row["row_hash"]
        if not prefix:
            return 0, blocked
        last = prefix[-1]
        ids = [str(r["run_id"]) for r in prefix]
        db.query(
            "INSERT INTO audit_checkpoints (tenant_id, seq, row_hash) VALUES (CAST(:t AS uuid), :seq, :hash) "
            "ON CONFLICT (tenant_id) DO UPDATE SET seq = EXCLUDED.seq, row_hash = EXCLUDED.row_hash, "
            "updated_at = now()",
            t=tenant_id,
            seq=last["seq"],
            hash=last["row_hash"],
        )
        feedback = db.one(
            "WITH d AS (DELETE FROM feedback_events WHERE tenant_id = CAST(:t AS uuid) "
            "AND run_id = ANY(CAST(:ids AS uuid[])) AND (SELECT feedback_retention FROM tenants "
            "WHERE id = CAST(:t AS uuid)) = 'delete_with_run' RETURNING 1) SELECT count(*) AS n FROM d",
            t=tenant_id,
            ids=ids,
        )
        db.query("DELETE FROM runs WHERE run_id = ANY(CAST(:ids AS uuid[]))", ids=ids)
        db.query("DELETE FROM run_audit WHERE run_id = ANY(CAST(:ids AS uuid[]))", ids=ids)
    result["audit_rows_deleted"] += len(prefix)
    result["feedback_deleted"] += feedback["n"] if feedback else 0
    return (len(prefix) if not blocked else 0), blocked


def _seq_exists(tenant_id: str, seq: int) -> bool:
    return (
        db.one(
            "SELECT 1 AS x FROM run_audit WHERE tenant_id = CAST(:t AS uuid) AND seq = :seq",
            t=tenant_id,
            seq=seq,
        )
        is not None
    )


def _delete_expired(
    table: str, cutoff, extra: str, tenant_ids: list[str], budget: Budget, result: dict[str, Any]
) -> bool:
    """Delete rows older than cutoff, BATCH at a time by ctid; False when the budget ran out."""
    params: dict[str, Any] = {"cutoff": cutoff, "batch": BATCH}
    if ":tenants" in extra:
        params["tenants"] = tenant_ids
    while True:
        if budget.spent:
            return False
        row = db.one(
            f"WITH d AS (DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} "  # noqa: S608
            f"WHERE created_at < :cutoff {extra} LIMIT :batch FOR UPDATE SKIP LOCKED)) RETURNING 1) "
            "SELECT count(*) AS n FROM d",
            **params,
        )
        deleted = row["n"] if row else 0
        result[f"{table}_deleted"] += deleted
        if deleted < BATCH:
            return True


def _dry_run(tenant_ids: list[str], limits: dict[str, Any], whole_tables: bool) -> dict[str, Any]:
    audit_rows = db.one(
        "SELECT count(*) AS n, count(DISTINCT tenant_id) AS tenants FROM run_audit "
        "WHERE tenant_id = ANY(CAST(:tenants AS uuid[])) AND created_at < :cutoff",
        tenants=tenant_ids,
        cutoff=limits["audit"],
    )
    feedback = db.one(
        "SELECT count(*) AS n FROM feedback_events f JOIN tenants t ON t.id = f.tenant_id "
        "JOIN run_audit a ON a.run_id = f.run_id WHERE f.tenant_id = ANY(CAST(:tenants AS uuid[])) "
        "AND a.created_at < :cutoff AND t.feedback_retention = 'delete_with_run'",
        tenants=tenant_ids,
        cutoff=limits["audit"],
    )
    temp = db.one(
        "SELECT count(*) AS n FROM temp_data WHERE created_at < :cutoff"  # noqa: S608 - constant text
        + ("" if whole_tables else " AND tenant_id = ANY(CAST(:tenants AS uuid[]))"),
        cutoff=limits["temp"],
        **({} if whole_tables else {"tenants": tenant_ids}),
    )
    ledger = db.one(
        "SELECT count(*) AS n FROM event_ledger WHERE created_at < :cutoff AND status = 'done'",
        cutoff=limits["ledger"],
    )
    assert audit_rows and feedback and temp and ledger
    return {
        "cutoffs": {k: v.isoformat() for k, v in limits.items()},
        "would_delete": {
            "audit_rows": audit_rows["n"],
            "audit_tenants": audit_rows["tenants"],
            "feedback": feedback["n"],
            "temp_data": temp["n"],
            "event_ledger": ledger["n"] if whole_tables else 0,
        },
        "complete": True,
    }
