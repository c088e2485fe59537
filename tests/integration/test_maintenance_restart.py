"""PostgreSQL restarted in the middle of retention: nothing lost, nothing repeated.

Runs against a private PostgreSQL cluster (pgserver, under a tmp dir) that this test
starts, crashes with `pg_ctl restart -m immediate` and removes — never the machine's
shared server.
"""

from __future__ import annotations

import threading
import time
import uuid

from harvey.ops import retention, tasks
from harvey.store import audit, db, feedback

from tests.conftest import pg_ctl
from tests.integration.test_maintenance import YEAR, write_chain

OLD, YOUNG, OLD_TEMP, YOUNG_TEMP = 1500, 5, 20000, 100


def test_restart_mid_batch_loses_nothing_and_repeats_nothing(private_pg, monkeypatch):
    from harvey.store import tenants

    monkeypatch.setattr(retention, "AUDIT_BATCH", 20)
    monkeypatch.setattr(retention, "BATCH", 200)
    tenant, _ = tenants.create("restart-firm")
    rows = write_chain(tenant.id, [8 * YEAR - i / 1000 for i in range(OLD)] + [10, 5, 2, 1, 0][:YOUNG])
    for row in (rows[0], rows[OLD - 1], rows[OLD], rows[-1]):
        feedback.record(tenant.id, {"run_id": str(row["run_id"]), "rating": 1})
    db.query(
        "INSERT INTO temp_data (id, tenant_id, kind, created_at) SELECT gen_random_uuid(), CAST(:t AS "
        "uuid), 'x', "
        "now() - interval '40 days' FROM generate_series(1, :old) UNION ALL SELECT gen_random_uuid(), "
        "CAST(:t AS uuid), 'x', now() - interval '1 day' FROM generate_series(1, :young)",
        t=tenant.id,
        old=OLD_TEMP,
        young=YOUNG_TEMP,
    )

    failure: list[BaseException] = []

    def prune() -> None:
        try:
            tasks.run("retention", tasks.Params())
        except BaseException as exc:  # noqa: BLE001 - the crash is the point
            failure.append(exc)
        finally:
            db.reset()

    worker = threading.Thread(target=prune)
    worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # restart once pruning is well under way
        checkpoint = db.one("SELECT seq FROM audit_checkpoints WHERE tenant_id = CAST(:t AS uuid)", t=tenant.id)
        if checkpoint and checkpoint["seq"] >= 200:
            break
        time.sleep(0.005)
    pg_ctl(private_pg, "-w", "-m", "immediate", "restart")
    worker.join(120)
    db.reset()
    assert failure, "the restart interrupted retention"

    # Right after the crash: the chain is still provable and every row past the checkpoint is there.
    cut = db.one("SELECT seq FROM audit_checkpoints WHERE tenant_id = CAST(:t AS uuid)", t=tenant.id)["seq"]
    assert 200 <= cut < OLD and cut % 20 == 0  # whole batches only
    remaining = db.query("SELECT seq FROM run_audit WHERE tenant_id = CAST(:t AS uuid) ORDER BY seq", t=tenant.id)
    assert [r["seq"] for r in remaining] == list(range(cut + 1, OLD + YOUNG + 1))
    assert audit.verify(tenant.id).ok

    result = tasks.run("retention", tasks.Params())
    assert result["complete"] and result["audit_rows_deleted"] == OLD - cut  # nothing pruned twice
    left = db.query("SELECT seq FROM run_audit WHERE tenant_id = CAST(:t AS uuid) ORDER BY seq", t=tenant.id)
    assert [r["seq"] for r in left] == list(range(OLD + 1, OLD + YOUNG + 1))
    checkpoint = db.one("SELECT seq, row_hash FROM audit_checkpoints WHERE tenant_id = CAST(:t AS uuid)", t=tenant.id)
    assert (checkpoint["seq"], checkpoint["row_hash"]) == (OLD, rows[OLD - 1]["row_hash"])
    assert audit.verify(tenant.id).ok
    temp = db.one("SELECT count(*) AS n, min(created_at) > now() - interval '2 days' AS young FROM temp_data")
    assert (temp["n"], temp["young"]) == (YOUNG_TEMP, True)
    kept = db.query("SELECT run_id FROM feedback_events WHERE tenant_id = CAST(:t AS uuid)", t=tenant.id)
    assert {r["run_id"] for r in kept} == {
        uuid.UUID(str(rows[OLD]["run_id"])),
        uuid.UUID(str(rows[-1]["run_id"])),
    }
