"""From feedback to the golden dataset, and `golden_eval` replaying it through the pipeline."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from harvey.cli import main
from harvey.ops import golden, tasks
from harvey.store import db, feedback, tenants

from tests.integration.test_generate_http import VALID


@pytest.fixture(scope="module")
def drafted(demo_docs):
    """A tenant with a few documents and one run made through the generate function."""
    from functions_framework import create_app
    from harvey.search.ingest import ingest

    tenant, key = tenants.create(f"golden-{uuid.uuid4().hex[:8]}")
    wanted = {"CDC:art6", "CDC:art14", "CDC:art42", "CC:art186", "CPC:art319"}
    ingest(tenant.id, [d for d in demo_docs if d.document_id in wanted])
    client = create_app("generate", "functions/generate/main.py").test_client()
    response = client.post(
        "/",
        data=json.dumps(VALID),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return tenant, response.get_json()


def test_spans_index_into_the_returned_document(drafted):
    tenant, run = drafted
    length = len(run["document_md"])
    ok = feedback.record(
        tenant.id,
        {
            "run_id": run["run_id"],
            "rating": 0,
            "error_spans": [{"start": length - 5, "end": length, "label": "fim"}],
        },
    )
    assert ok.created
    with pytest.raises(feedback.InvalidFeedback) as caught:
        feedback.record(
            tenant.id,
            {
                "run_id": run["run_id"],
                "rating": 0,
                "error_spans": [{"start": 0, "end": length + 1, "label": "x"}],
            },
        )
    assert caught.value.field == "error_spans.0.end"


def test_golden_add_needs_a_correction_then_eval_replays_it(drafted):
    tenant, run = drafted
    runner = CliRunner()
    empty = runner.invoke(main, ["golden", "add", "--run", run["run_id"], "--tenant", tenant.name])
    assert empty.exit_code == 1 and "edited text or missing sources" in empty.output
    feedback.record(
        tenant.id,
        {
            "run_id": run["run_id"],
            "rating": -1,
            "edited_text_md": run["document_md"] + "\nPedido de danos morais.",
            "missing_sources": [{"raw": "CDC:art42", "class": "legislacao"}],
        },
    )
    added = runner.invoke(main, ["golden", "add", "--run", run["run_id"], "--tenant", tenant.name])
    assert added.exit_code == 0, added.output
    case = json.loads(added.stdout)
    assert case["has_expected"] is True and case["missing_sources"][0]["raw"] == "CDC:art42"
    again = runner.invoke(main, ["golden", "add", "--run", run["run_id"], "--tenant", tenant.name])
    assert json.loads(again.stdout)["id"] == case["id"]  # refreshed, not duplicated

    result = tasks.run("golden_eval", tasks.Params(tenant=tenant))
    assert result["cases"] == 1 and result["failed"] == 0
    assert 0 <= result["mean_faithfulness"] <= 1 and result["mean_text_f1"] > 0.5
    stored = db.one("SELECT * FROM golden_runs WHERE eval_id = CAST(:e AS uuid)", e=result["eval_id"])
    assert stored["status"] == "succeeded" and str(stored["case_id"]) == case["id"]
    assert tasks.run("golden_eval", tasks.Params(tenant=tenant, dry_run=True))["cases"] == 1


def test_golden_add_refuses_unknown_and_foreign_runs(drafted, make_tenant):
    _, run = drafted
    other, _ = make_tenant()
    with pytest.raises(golden.GoldenError):
        golden.add(other, run["run_id"])
    with pytest.raises(golden.GoldenError):
        golden.add(other, str(uuid.uuid4()))


def test_feedback_cli_summary(drafted):
    tenant, run = drafted
    result = CliRunner().invoke(main, ["feedback", "summary", run["run_id"], "--tenant", tenant.name])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["count"] >= 1
    missing = CliRunner().invoke(main, ["feedback", "summary", str(uuid.uuid4()), "--tenant", tenant.name])
    assert missing.exit_code == 1
