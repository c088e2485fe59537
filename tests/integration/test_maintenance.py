"""The maintenance function and its tasks, on the real PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from harvey.ops import tasks
from harvey.store import audit, db, feedback

YEAR = 365.25


def write_chain(tenant_id: str, ages_days: list[float]) -> list[dict]:
    """Append audit rows created `age` days ago (oldest first), hashed and linked as audit.write does."""
    written = []
    for age in ages_days:
        when = datetime.now(UTC) - timedelta(days=age)
        last = db.one(
            "SELECT seq, row_hash FROM run_audit WHERE tenant_id = CAST(:t AS uuid) ORDER BY seq DESC LIMIT 1",
            t=tenant_id,
        ) or db.one("SELECT seq, row_hash FROM audit_checkpoints WHERE tenant_id = CAST(:t AS uuid)", t=tenant_id)
        record = audit.RunRecord(
            run_id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            task="tarefa",
            prompt_version="t",
            input_hash="a" * 64,
            started_at=when,
            ended_at=when,
            success=True,
            doc_type="parecer",
        )
        row = dict(
            record.__dict__,
            seq=last["seq"] + 1 if last else 1,
            created_at=when,
            prev_hash=last["row_hash"] if last else audit.GENESIS,
        )
        row["row_hash"] = audit.row_hash(row)
        columns = [*audit.HASHED_FIELDS, "row_hash"]
        jsonish = {"agent_trace", "policy_snapshot", "pii_report", "sources_used", "faithfulness_report"}
        values = ", ".join(f"CAST(:{c} AS jsonb)" if c in jsonish else f":{c}" for c in columns)
        db.query(
            f"INSERT INTO run_audit ({', '.join(columns)}) VALUES ({values})",
            **{c: db.jsonb(row[c]) if c in jsonish else row[c] for c in columns},
        )
        written.append(row)
    return written


def temp_rows(tenant_id: str, ages_days: list[float]) -> None:
    for age in ages_days:
        db.query(
            "INSERT INTO temp_data (id, tenant_id, kind, created_at) VALUES (CAST(:id AS uuid), CAST(:t AS "
            "uuid), "
            "'upload', now() - make_interval(secs => :s))",
            id=str(uuid.uuid4()),
            t=tenant_id,
            s=age * 86400,
        )


def count(table: str, tenant_id: str) -> int:
    return db.one(f"SELECT count(*) AS n FROM {table} WHERE tenant_id = CAST(:t AS uuid)", t=tenant_id)["n"]


def scoped(tenant, **kwargs) -> tasks.Params:
    return tasks.Params(tenant=tenant, **kwargs)


def test_retention_prunes_a_prefix_keeps_the_young_and_the_chain_verifies(make_tenant):
    tenant, _ = make_tenant()
    rows = write_chain(tenant.id, [9 * YEAR, 8 * YEAR, 7.1 * YEAR, 6 * YEAR, 1, 0])
    old_run, young_run = str(rows[0]["run_id"]), str(rows[3]["run_id"])
    feedback.record(tenant.id, {"run_id": old_run, "rating": -1})
    feedback.record(tenant.id, {"run_id": young_run, "rating": 1})
    temp_rows(tenant.id, [31, 45, 29, 1])

    dry = tasks.run("retention", scoped(tenant, dry_run=True))
    assert dry["would_delete"] == {
        "audit_rows": 3,
        "audit_tenants": 1,
        "feedback": 1,
        "temp_data": 2,
        "event_ledger": 0,
    }
    assert count("run_audit", tenant.id) == 6 and count("temp_data", tenant.id) == 4

    result = tasks.run("retention", scoped(tenant))
    assert result["audit_rows_deleted"] == 3 and result["feedback_deleted"] == 1
    assert result["temp_data_deleted"] == 2 and result["complete"] is True
    left = db.query("SELECT seq FROM run_audit WHERE tenant_id = CAST(:t AS uuid) ORDER BY seq", t=tenant.id)
    assert [r["seq"] for r in left] == [4, 5, 6]  # the 6-year-old row survives
    assert count("temp_data", tenant.id) == 2  # the 29-day-old row survives
    checkpoint = db.one("SELECT * FROM audit_checkpoints WHERE tenant_id = CAST(:t AS uuid)", t=tenant.id)
    assert (checkpoint["seq"], checkpoint["row_hash"]) == (3, rows[2]["row_hash"])
    report = audit.verify(tenant.id)
    assert report.ok and report.rows_checked == 3
    kept = db.query("SELECT run_id FROM feedback_events WHERE tenant_id = CAST(:t AS uuid)", t=tenant.id)
    assert [f["run_id"] for f in kept] == [uuid.UUID(young_run)]

    again = tasks.run("retention", scoped(tenant))  # idempotent: nothing left to do
    assert again["audit_rows_deleted"] == 0 and again["temp_data_deleted"] == 0
    audit.write(
        audit.RunRecord(
            run_id=str(uuid.uuid4()),
            tenant_id=tenant.id,
            task="t",
            prompt_version="t",
            input_hash="b" * 64,
            started_at=datetime.now(UTC),
            ended_at=datetime.now(UTC),
            success=True,
        )
    )
    assert audit.verify(tenant.id).ok


def test_pruning_everything_leaves_a_checkpoint_new_rows_continue(make_tenant):
    tenant, _ = make_tenant()
    rows = write_chain(tenant.id, [8 * YEAR, 7.5 * YEAR])
    tasks.run("retention", scoped(tenant))
    assert count("run_audit", tenant.id) == 0
    now = datetime.now(UTC)
    new = audit.write(
        audit.RunRecord(
            run_id=str(uuid.uuid4()),
            tenant_id=tenant.id,
            task="t",
            prompt_version="t",
            input_hash="c" * 64,
            started_at=now,
            ended_at=now,
            success=True,
        )
    )
    assert new["seq"] == 3 and new["prev_hash"] == rows[-1]["row_hash"]
    assert audit.verify(tenant.id).ok


def test_keep_policy_keeps_feedback_of_pruned_runs(make_tenant):
    tenant, _ = make_tenant()
    (row,) = write_chain(tenant.id, [8 * YEAR])
    feedback.record(tenant.id, {"run_id": str(row["run_id"]), "rating": 0})
    db.query("UPDATE tenants SET feedback_retention = 'keep' WHERE id = CAST(:t AS uuid)", t=tenant.id)
    result = tasks.run("retention", scoped(tenant))
    assert result["audit_rows_deleted"] == 1 and result["feedback_deleted"] == 0
    assert count("feedback_events", tenant.id) == 1


def test_a_tampered_old_row_is_caught_and_never_pruned_away(make_tenant):
    tenant, _ = make_tenant()
    rows = write_chain(tenant.id, [9 * YEAR, 8 * YEAR, 7.5 * YEAR, 1])
    db.query("UPDATE run_audit SET task = 'forjado' WHERE run_id = CAST(:r AS uuid)", r=str(rows[1]["run_id"]))
    result = tasks.run("retention", scoped(tenant))
    assert result["audit_rows_deleted"] == 1  # only the intact row before the tampered one
    assert result["blocked"] == [{"tenant_id": tenant.id, "seq": 2, "problem": "altered"}]
    report = audit.verify(tenant.id)
    assert not report.ok and report.problems[0] == {
        "problem": "altered",
        "seq": 2,
        "run_id": str(rows[1]["run_id"]),
    }


def test_a_hole_in_the_chain_is_never_pruned_over(make_tenant):
    tenant, _ = make_tenant()
    rows = write_chain(tenant.id, [9 * YEAR, 8 * YEAR, 7.5 * YEAR])
    db.query("DELETE FROM run_audit WHERE run_id = CAST(:r AS uuid)", r=str(rows[0]["run_id"]))
    result = tasks.run("retention", scoped(tenant))
    assert result["audit_rows_deleted"] == 0
    assert result["blocked"] == [{"tenant_id": tenant.id, "seq": 1, "problem": "missing"}]


def test_verify_audit_reports_a_broken_chain_as_event_and_metric(client, make_tenant, sink, settings_env):
    good, _ = make_tenant()
    bad, _ = make_tenant()
    write_chain(good.id, [2, 1])
    rows = write_chain(bad.id, [3, 2, 1])
    settings_env(K_SINK=sink.url)
    clean = tasks.run("verify_audit", tasks.Params(tenant=good))
    assert clean["ok"] is True and clean["rows_checked"] == 2
    db.query("UPDATE run_audit SET success = false WHERE run_id = CAST(:r AS uuid)", r=str(rows[1]["run_id"]))
    result = tasks.run("verify_audit", tasks.Params())
    assert result["ok"] is False
    (broken,) = [b for b in result["broken"] if b["tenant_id"] == bad.id]
    assert broken["problems"][0]["problem"] == "altered"
    chain_events = [e for e in sink.events if e["type"] == "com.harvey.audit.chain_broken"]
    assert bad.id in {e["data"]["tenant_id"] for e in chain_events}
    assert "harvey_audit_chain_broken 1.0" in client.get("/metrics").get_data(as_text=True)
    db.query("DELETE FROM run_audit WHERE tenant_id = CAST(:t AS uuid)", t=bad.id)  # leave a clean database
    db.query("DELETE FROM maintenance_status WHERE task = 'verify_audit'")
    tasks._chain_broken[0] = 0


def test_reindex_runs_concurrently_outside_a_transaction():
    result = tasks.run("reindex", tasks.Params())
    assert result["tables"] == ["run_audit", "audit_checkpoints", "feedback_events"]
    assert "run_audit_tenant_created" in result["indexes"]


def test_unknown_task_and_bad_params_are_task_errors():
    with pytest.raises(tasks.TaskError) as caught:
        tasks.run("defrag", tasks.Params())
    assert caught.value.field == "task"
    for data, field in [
        ({"task": "retention", "dry_run": "yes"}, "dry_run"),
        ({"task": "retention", "budget_s": 0}, "budget_s"),
        ({"task": "retention", "tenant": "no-such-firm"}, "tenant"),
        ({"task": "retention", "colour": 1}, "colour"),
    ]:
        with pytest.raises(tasks.TaskError) as caught:
            tasks.params_from(data)
        assert caught.value.field == field


# --- the function -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    from functions_framework import create_app

    return create_app("maintenance", "functions/maintenance/main.py").test_client()


def ping(data: dict, event_id: str | None = None) -> CloudEvent:
    return CloudEvent(
        {
            "type": "dev.knative.sources.ping",
            "source": "/apis/v1/namespaces/harvey/pingsources/nightly",
            "id": event_id or str(uuid.uuid4()),
        },
        data,
    )


def deliver(client, event, mode: str = "binary"):
    headers, body = (to_binary if mode == "binary" else to_structured)(event)
    return client.post("/", data=body, headers=dict(headers))


def test_probes_answer_get(client):
    body = client.get("/healthz").get_json()
    assert (body["status"], body["function"]) == ("ok", "maintenance")
    assert body["warm_up"] in {"running", "done"}  # process-wide: another app's warm-up may be running
    assert client.get("/metrics").status_code == 200
    assert client.get("/").status_code == 405


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_ping_runs_the_task_once_however_often_delivered(client, make_tenant, mode, sink, settings_env):
    tenant, _ = make_tenant()
    temp_rows(tenant.id, [40, 40, 2])
    settings_env(K_SINK=sink.url)
    event = ping({"task": "retention", "tenant": tenant.name})
    first = deliver(client, event, mode)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.data == b"" and first.headers["X-Harvey-Duplicate"] == "false"
    stored = db.one("SELECT result FROM event_ledger WHERE event_id = :id", id=event["id"])["result"]
    assert stored["temp_data_deleted"] == 2
    temp_rows(tenant.id, [40])  # new expired data: a redelivery must not act on it
    again = deliver(client, event, mode)
    assert again.status_code == 200 and again.headers["X-Harvey-Duplicate"] == "true"
    assert count("temp_data", tenant.id) == 2
    completed = [e for e in sink.events if e["type"] == "com.harvey.maintenance.completed"]
    assert len(completed) == 1 and completed[0]["data"]["task"] == "retention"


def test_a_delivery_while_another_holds_the_event_is_409(client, make_tenant):
    from harvey.store import ledger

    event = ping({"task": "verify_audit"})
    assert ledger.claim(ledger.EventKey(event["source"], event["id"], event["type"]), 600).state == "new"
    assert deliver(client, event).status_code == 409
    db.query(
        "UPDATE event_ledger SET lease_until = now() - interval '1 second' WHERE event_id = :id",
        id=event["id"],
    )
    assert deliver(client, event).status_code == 200  # the holder died: its lease ran out


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"task": "defrag"}, "task"),
        ({}, "task"),
        ({"task": "purge_document"}, "tenant"),
        ({"task": "retention", "dry_run": 1}, "dry_run"),
    ],
)
def test_bad_pings_are_400_final(client, data, field):
    event = ping(data)
    response = deliver(client, event)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == field
    assert db.one("SELECT count(*) AS n FROM event_ledger WHERE event_id = :id", id=event["id"])["n"] == 0


def test_non_cloudevents_and_other_types_are_400(client):
    assert client.post("/", json={"task": "retention"}).status_code == 400
    other = CloudEvent({"type": "com.example.x", "source": "/x"}, {"task": "retention"})
    assert deliver(client, other).status_code == 400


def test_last_success_is_stored_and_exported_by_a_fresh_process(client):
    response = deliver(client, ping({"task": "reindex", "dry_run": False}))
    assert response.status_code == 200
    stored = db.one("SELECT last_success_at FROM maintenance_status WHERE task = 'reindex'")
    tasks._seen.clear()  # what a new pod knows: nothing in memory
    exposition = client.get("/metrics").get_data(as_text=True)
    wanted = 'harvey_maintenance_last_success_timestamp_seconds{task="reindex"}'
    line = next(x for x in exposition.splitlines() if x.startswith(wanted))
    assert float(line.split()[-1]) == pytest.approx(stored["last_success_at"].timestamp())
    assert 'harvey_maintenance_runs_total{outcome="succeeded",task="reindex"}' in exposition


def test_dry_run_changes_nothing_and_is_not_a_success(make_tenant):
    tenant, _ = make_tenant()
    temp_rows(tenant.id, [40])
    db.query("DELETE FROM maintenance_status WHERE task = 'retention'")
    result = tasks.run("retention", scoped(tenant, dry_run=True))
    assert result["would_delete"]["temp_data"] == 1 and count("temp_data", tenant.id) == 1
    assert db.one("SELECT 1 AS x FROM maintenance_status WHERE task = 'retention'") is None


def test_cli_run_prints_json_and_rejects_unknown_tasks(make_tenant):
    from harvey.cli import main

    tenant, _ = make_tenant()
    temp_rows(tenant.id, [40, 1])
    result = CliRunner().invoke(main, ["maintenance", "run", "retention", "--dry-run", "--tenant", tenant.name])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["would_delete"]["temp_data"] == 1
    assert CliRunner().invoke(main, ["maintenance", "run", "defrag"]).exit_code == 2


def test_purge_document_removes_chunks_audits_and_bumps_the_cache(make_tenant, demo_docs):
    from harvey.search.ingest import ingest
    from harvey.search.retrieval import open_index
    from harvey.store import kvstore

    tenant, _ = make_tenant()
    ingest(tenant.id, [d for d in demo_docs if d.document_id in ("CDC:art42", "CC:art186")])
    index = open_index()
    before = index.count(tenant.id)
    r = kvstore.client()
    generation = int(r.get(f"harvey:gen:{tenant.id}") or 0)
    params = tasks.Params(tenant=tenant, document_id="CDC:art42")
    result = tasks.run("purge_document", params)
    assert result["status"] == "purged" and 0 < result["chunk_count"] == before - index.count(tenant.id)
    document = db.one(
        "SELECT status FROM documents WHERE tenant_id = CAST(:t AS uuid) AND document_id = 'CDC:art42'",
        t=tenant.id,
    )
    assert document["status"] == "purged"
    row = audit.get(tenant.id, result["audit_run_id"])
    assert row["task"] == "maintenance:purge_document" and audit.verify(tenant.id).ok
    assert int(r.get(f"harvey:gen:{tenant.id}")) == generation + 1
    again = tasks.run("purge_document", params)  # idempotent: no second audit row
    assert again["already_purged"] is True
    assert count("run_audit", tenant.id) == 1
    with pytest.raises(tasks.TaskError):
        tasks.run("purge_document", tasks.Params(tenant=tenant, document_id="nope"))


def test_only_all_tenant_runs_count_as_the_last_success(make_tenant):
    tenant, _ = make_tenant()
    db.query("DELETE FROM maintenance_status WHERE task = 'verify_audit'")
    tasks.run("verify_audit", scoped(tenant))
    assert db.one("SELECT 1 AS x FROM maintenance_status WHERE task = 'verify_audit'") is None
    tasks.run("verify_audit", tasks.Params())
    stored = db.one("SELECT last_result FROM maintenance_status WHERE task = 'verify_audit'")
    assert stored["last_result"]["tenants_checked"] >= 1  # other tests leave broken chains: ok may be false


def test_the_cli_offers_every_maintenance_task():
    from harvey.cli.maintenance import TASK_NAMES

    assert set(TASK_NAMES) == set(tasks.TASKS)
