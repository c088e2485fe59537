"""The forensic audit trail: one `run_audit` row per run, hash-chained per tenant.

Each row's `row_hash` is SHA-256 over its canonical content plus the previous row's
hash, so altering, deleting or re-ordering any row breaks every hash after it.
Deleting the newest rows leaves a shorter valid chain: that shows only against a head
kept elsewhere (an `Anchor`, from the run's CloudEvent). Retention may prune the
oldest rows; it first records the last pruned row's hash in `audit_checkpoints`,
from which verification then starts.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harvey.store import db

GENESIS = "0" * 64

# The columns covered by the hash, in a fixed order. Adding one is a migration and a new chain rule.
HASHED_FIELDS = (
    "run_id",
    "tenant_id",
    "seq",
    "user_id",
    "task",
    "doc_type",
    "started_at",
    "ended_at",
    "success",
    "error_message",
    "input_hash",
    "output_hash",
    "context_docs_hash",
    "prompt_version",
    "agent_trace",
    "policy_snapshot",
    "pii_report",
    "sources_used",
    "faithfulness_report",
    "estimated_cost_usd",
    "tokens_input",
    "tokens_output",
    "execution_time_ms",
    "request_id",
    "model_used",
    "created_at",
    "prev_hash",
)
_JSON_FIELDS = {"agent_trace", "policy_snapshot", "pii_report", "sources_used", "faithfulness_report"}


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _normalise(name: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    if name == "estimated_cost_usd" and value is not None:
        return round(float(value), 8)
    return value


def row_hash(row: dict[str, Any]) -> str:
    content = {name: _normalise(name, row.get(name)) for name in HASHED_FIELDS}
    return sha256_text(canonical_json(content))


@dataclass
class RunRecord:
    """What a run knows about itself when it ends, successful or not."""

    run_id: str
    tenant_id: str
    task: str
    prompt_version: str
    input_hash: str
    started_at: datetime
    ended_at: datetime
    success: bool
    doc_type: str | None = None
    user_id: str | None = None
    error_message: str | None = None
    output_hash: str | None = None
    context_docs_hash: str | None = None
    agent_trace: list[dict[str, Any]] = field(default_factory=list)
    policy_snapshot: dict[str, Any] = field(default_factory=dict)
    pii_report: dict[str, Any] = field(default_factory=dict)
    sources_used: list[Any] = field(default_factory=list)
    faithfulness_report: dict[str, Any] = field(default_factory=dict)
    estimated_cost_usd: float = 0.0
    tokens_input: int = 0
    tokens_output: int = 0
    execution_time_ms: int = 0
    request_id: str | None = None
    model_used: str | None = None


def write(record: RunRecord) -> dict[str, Any]:
    """Append the run's row to its tenant's chain; a second write of the same run_id is a no-op."""
    with db.transaction():
        # Serialise appends per tenant so seq and prev_hash never fork.
        db.query("SELECT pg_advisory_xact_lock(hashtext(:tenant))", tenant=record.tenant_id)
        existing = db.one(
            "SELECT * FROM run_audit WHERE run_id = CAST(:run AS uuid) AND tenant_id = CAST(:tenant AS uuid)",
            run=record.run_id,
            tenant=record.tenant_id,
        )
        if existing:
            return existing
        last = db.one(
            "SELECT seq, row_hash FROM run_audit WHERE tenant_id = CAST(:tenant AS uuid) ORDER BY seq DESC LIMIT 1",
            tenant=record.tenant_id,
        ) or db.one(
            "SELECT seq, row_hash FROM audit_checkpoints WHERE tenant_id = CAST(:tenant AS uuid)",
            tenant=record.tenant_id,
        )
        row: dict[str, Any] = dict(record.__dict__)
        row["seq"] = (last["seq"] + 1) if last else 1
        row["prev_hash"] = last["row_hash"] if last else GENESIS
        row["created_at"] = datetime.now(UTC)
        for name in ("started_at", "ended_at", "created_at"):
            row[name] = row[name].astimezone(UTC)
        row["row_hash"] = row_hash(row)
        columns = list(HASHED_FIELDS) + ["row_hash"]
        values = ", ".join(f"CAST(:{c} AS jsonb)" if c in _JSON_FIELDS else f":{c}" for c in columns)
        params = {c: (db.jsonb(row[c]) if c in _JSON_FIELDS else row[c]) for c in columns}
        db.query(f"INSERT INTO run_audit ({', '.join(columns)}) VALUES ({values})", **params)  # noqa: S608
    return row


def get(tenant_id: str, run_id: str) -> dict[str, Any] | None:
    if not db.is_uuid(run_id):
        return None
    return db.one(
        "SELECT * FROM run_audit WHERE run_id = CAST(:run AS uuid) AND tenant_id = CAST(:tenant AS uuid)",
        run=run_id,
        tenant=tenant_id,
    )


def month_start(now: datetime | None = None) -> datetime:
    """Midnight UTC on the first day of `now`'s calendar month (UTC)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_cost(tenant_id: str) -> float:
    """What the tenant's runs audited this calendar month (UTC) cost, from `estimated_cost_usd`."""
    row = db.one(
        "SELECT COALESCE(SUM(estimated_cost_usd), 0) AS cost FROM run_audit "
        "WHERE tenant_id = CAST(:tenant AS uuid) AND created_at >= :since",
        tenant=tenant_id,
        since=month_start(),
    )
    return float(row["cost"]) if row else 0.0


@dataclass
class ChainReport:
    tenant_id: str
    rows_checked: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    # anchors older than the retention checkpoint: their rows are gone by design, so they prove nothing
    # either way (expected for runs older than the retention period, suspicious for recent ones)
    unverifiable: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


_ANCHOR = re.compile(r"(?P<seq>[0-9]+):(?P<hash>[0-9a-fA-F]{64})")


@dataclass(frozen=True)
class Anchor:
    """A (seq, row_hash) pair kept outside the database, e.g. from a `document.generated` event."""

    seq: int
    row_hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        match = _ANCHOR.fullmatch(text.strip())
        if not match or int(match["seq"]) < 1:
            raise ValueError(f"{text!r} is not SEQ:HASH (a sequence number from 1, a colon, 64 hex digits)")
        return cls(int(match["seq"]), match["hash"].lower())


def verify(tenant_id: str, batch: int = 1000, anchors: Sequence[Anchor] = ()) -> ChainReport:
    """Walk the tenant's chain from its checkpoint; report altered, missing or re-ordered rows.

    The chain alone cannot show that its newest rows were deleted: a shorter chain is still a valid
    one. `anchors` are heads recorded elsewhere (each generated document's event and log line carry
    `audit_seq` and `audit_row_hash`); a row they name must still be there with the same hash, which
    protects the chain up to the newest anchor kept.
    """
    report = ChainReport(tenant_id)
    checkpoint = db.one(
        "SELECT seq, row_hash FROM audit_checkpoints WHERE tenant_id = CAST(:tenant AS uuid)",
        tenant=tenant_id,
    )
    expected_seq = checkpoint["seq"] + 1 if checkpoint else 1
    expected_prev = checkpoint["row_hash"] if checkpoint else GENESIS
    wanted = {a.seq for a in anchors}
    seen = {checkpoint["seq"]: checkpoint["row_hash"]} if checkpoint else {}
    while True:
        rows = db.query(
            "SELECT * FROM run_audit WHERE tenant_id = CAST(:tenant AS uuid) AND seq >= :from_seq "
            "ORDER BY seq LIMIT :batch",
            tenant=tenant_id,
            from_seq=expected_seq,
            batch=batch,
        )
        for row in rows:
            if row["seq"] != expected_seq:
                report.problems.append({"problem": "missing", "seq_from": expected_seq, "seq_to": row["seq"] - 1})
            if row["prev_hash"] != expected_prev:
                report.problems.append({"problem": "broken_link", "seq": row["seq"], "run_id": str(row["run_id"])})
            if row_hash(row) != row["row_hash"]:
                report.problems.append({"problem": "altered", "seq": row["seq"], "run_id": str(row["run_id"])})
            report.rows_checked += 1
            expected_seq = row["seq"] + 1
            expected_prev = row["row_hash"]
            if row["seq"] in wanted:
                seen[row["seq"]] = row["row_hash"]
        if len(rows) < batch:
            break
    pruned_up_to = checkpoint["seq"] if checkpoint else 0
    for anchor in dict.fromkeys(anchors):
        if anchor.seq < pruned_up_to:
            report.unverifiable.append({"anchor_seq": anchor.seq, "checkpoint_seq": pruned_up_to})
        elif anchor.seq not in seen:
            report.problems.append({"problem": "anchor_missing", "seq": anchor.seq})
        elif seen[anchor.seq] != anchor.row_hash.lower():
            report.problems.append({"problem": "anchor_mismatch", "seq": anchor.seq})
    return report
