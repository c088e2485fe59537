"""Tenants, API keys and the hash-chained audit trail, on the real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from harvey.store import audit, db, tenants


def _record(tenant_id: str, **overrides) -> audit.RunRecord:
    now = datetime.now(UTC)
    values = dict(
        run_id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        task="tarefa",
        prompt_version="t",
        input_hash="a" * 64,
        started_at=now - timedelta(seconds=1),
        ended_at=now,
        success=True,
        faithfulness_report={"score": 0.875, "sentences": [{"text": "x", "citations": [1]}]},
        estimated_cost_usd=0.0123,
        sources_used=[{"n": 1, "source_id": "CC:art186"}],
    )
    values.update(overrides)
    return audit.RunRecord(**values)


def test_migrations_are_recorded_and_idempotent():
    assert db.migrate() == []
    status = db.status()
    assert "0001_core" in status["applied"] and status["pending"] == []


def test_api_key_is_shown_once_and_stored_hashed(make_tenant):
    tenant, key = make_tenant()
    stored = db.query("SELECT key_hash, key_prefix FROM api_keys WHERE tenant_id = CAST(:t AS uuid)", t=tenant.id)
    assert len(stored) == 1
    assert stored[0]["key_hash"] == tenants.hash_key(key) and key not in stored[0]["key_hash"]
    assert tenants.authenticate(key) == tenant
    assert tenants.authenticate(key + "x") is None
    assert tenants.authenticate("not-a-key") is None


def test_duplicate_tenant_is_refused(make_tenant):
    tenant, _ = make_tenant()
    with pytest.raises(tenants.TenantExists):
        tenants.create(tenant.name)


def test_rotate_key_revokes_the_old_one(make_tenant):
    tenant, old = make_tenant()
    new = tenants.rotate_key(tenant.name)
    assert tenants.authenticate(old) is None
    assert tenants.authenticate(new).id == tenant.id


def test_flags_are_read_per_request(make_tenant):
    tenant, key = make_tenant()
    assert tenants.authenticate(key).flags == {"logs_only": False, "force_fallback": False}
    tenants.set_flags(tenant.name, logs_only=True)
    assert tenants.authenticate(key).flags == {"logs_only": True, "force_fallback": False}


def test_chain_links_rows_and_verifies(make_tenant):
    tenant, _ = make_tenant()
    rows = [audit.write(_record(tenant.id)) for _ in range(3)]
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[0]["prev_hash"] == audit.GENESIS
    assert rows[1]["prev_hash"] == rows[0]["row_hash"]
    report = audit.verify(tenant.id)
    assert report.ok and report.rows_checked == 3


def test_second_write_of_a_run_is_a_noop(make_tenant):
    tenant, _ = make_tenant()
    record = _record(tenant.id)
    audit.write(record)
    audit.write(record)
    assert db.one("SELECT count(*) AS n FROM run_audit WHERE tenant_id = CAST(:t AS uuid)", t=tenant.id)["n"] == 1


def test_chains_are_per_tenant(make_tenant):
    a, _ = make_tenant()
    b, _ = make_tenant()
    audit.write(_record(a.id))
    row_b = audit.write(_record(b.id))
    assert row_b["seq"] == 1 and row_b["prev_hash"] == audit.GENESIS
    first_a = db.one("SELECT run_id FROM run_audit WHERE tenant_id = CAST(:t AS uuid)", t=a.id)
    assert audit.get(b.id, str(first_a["run_id"])) is None


@pytest.mark.parametrize(
    ("column", "sql_value"),
    [
        ("task", "'tarefa adulterada'"),
        ("success", "false"),
        ("faithfulness_report", """'{"score": 1.0}'::jsonb"""),
        ("estimated_cost_usd", "0"),
        ("ended_at", "ended_at + interval '1 second'"),
    ],
)
def test_tampered_row_is_caught(make_tenant, column, sql_value):
    tenant, _ = make_tenant()
    rows = [audit.write(_record(tenant.id)) for _ in range(3)]
    db.query(
        f"UPDATE run_audit SET {column} = {sql_value} WHERE run_id = CAST(:r AS uuid)",  # test-only literal SQL
        r=rows[1]["run_id"],
    )
    report = audit.verify(tenant.id)
    assert not report.ok
    assert report.problems == [{"problem": "altered", "seq": 2, "run_id": rows[1]["run_id"]}]


def test_deleted_row_is_reported_missing(make_tenant):
    tenant, _ = make_tenant()
    rows = [audit.write(_record(tenant.id)) for _ in range(4)]
    db.query("DELETE FROM run_audit WHERE run_id = CAST(:r AS uuid)", r=rows[1]["run_id"])
    problems = audit.verify(tenant.id).problems
    assert {"problem": "missing", "seq_from": 2, "seq_to": 2} in problems
    assert any(p["problem"] == "broken_link" and p["seq"] == 3 for p in problems)


def test_rehashing_a_forged_row_still_breaks_the_next_link(make_tenant):
    """An attacker who recomputes a row's own hash cannot fix the following row's prev_hash."""
    tenant, _ = make_tenant()
    rows = [audit.write(_record(tenant.id)) for _ in range(3)]
    forged = dict(db.one("SELECT * FROM run_audit WHERE run_id = CAST(:r AS uuid)", r=rows[0]["run_id"]))
    forged["task"] = "forjada"
    db.query(
        "UPDATE run_audit SET task = :task, row_hash = :h WHERE run_id = CAST(:r AS uuid)",
        task="forjada",
        h=audit.row_hash(forged),
        r=rows[0]["run_id"],
    )
    problems = audit.verify(tenant.id).problems
    assert problems == [{"problem": "broken_link", "seq": 2, "run_id": rows[1]["run_id"]}]


def test_deleting_the_newest_rows_shows_only_against_an_anchor(make_tenant):
    tenant, _ = make_tenant()
    rows = [audit.write(_record(tenant.id)) for _ in range(3)]
    head = audit.Anchor(rows[-1]["seq"], rows[-1]["row_hash"])
    assert audit.verify(tenant.id, anchors=[head]).ok
    db.query("DELETE FROM run_audit WHERE run_id = CAST(:r AS uuid)", r=rows[-1]["run_id"])
    assert audit.verify(tenant.id).ok  # a shorter chain is still a valid chain
    assert audit.verify(tenant.id, anchors=[head]).problems == [{"problem": "anchor_missing", "seq": 3}]
    forged = audit.Anchor(2, "f" * 64)
    assert audit.verify(tenant.id, anchors=[forged]).problems == [{"problem": "anchor_mismatch", "seq": 2}]


def test_anchor_before_the_retention_checkpoint_is_listed_as_unverifiable(make_tenant):
    tenant, _ = make_tenant()
    rows = [audit.write(_record(tenant.id)) for _ in range(3)]
    db.query(
        "INSERT INTO audit_checkpoints (tenant_id, seq, row_hash) VALUES (CAST(:t AS uuid), 2, :h)",
        t=tenant.id,
        h=rows[1]["row_hash"],
    )
    db.query("DELETE FROM run_audit WHERE tenant_id = CAST(:t AS uuid) AND seq <= 2", t=tenant.id)
    anchors = [audit.Anchor(r["seq"], r["row_hash"]) for r in rows]
    report = audit.verify(tenant.id, anchors=[*anchors, anchors[0]])
    assert report.ok
    assert report.unverifiable == [{"anchor_seq": 1, "checkpoint_seq": 2}]  # once, though given twice
    # the checkpoint keeps the hash of the last pruned row: an anchor on it is still compared
    assert not audit.verify(tenant.id, anchors=[audit.Anchor(2, "0" * 64)]).ok


def test_anchor_hash_is_read_in_either_case(make_tenant):
    tenant, _ = make_tenant()
    row = audit.write(_record(tenant.id))
    anchor = audit.Anchor.parse(f"{row['seq']}:{row['row_hash'].upper()}")
    assert anchor.row_hash == row["row_hash"]
    assert audit.verify(tenant.id, anchors=[anchor]).ok


@pytest.mark.parametrize("text", ["12", "x:" + "a" * 64, "3:abc", "3:" + "g" * 64, "0:" + "a" * 64, "١٢:" + "a" * 64])
def test_malformed_anchor_is_refused(text):
    with pytest.raises(ValueError, match="SEQ:HASH"):
        audit.Anchor.parse(text)
