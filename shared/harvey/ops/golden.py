"""The golden dataset: runs a lawyer corrected, replayed to see whether Harvey improved.

A case keeps the run's request, the lawyer's edited text (the expected answer) and the
sources they said were missing. `evaluate` re-runs every case through the pipeline and
stores per-case faithfulness, citation count, missing-source recall (did the new draft
cite what the lawyer missed?) and token F1 against the edited text in `golden_runs`.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from harvey.store import db, tenants


class GoldenError(ValueError):
    """The run cannot become a case (unknown, or no correction to learn from)."""


def add(tenant: tenants.Tenant, run_id: str) -> dict[str, Any]:
    """Create or refresh the case for a run from all its feedback."""
    from harvey.drafting import runs

    run = runs.get(tenant.id, run_id)
    if run is None:
        raise GoldenError(
            f"no run {run_id} with a stored request for tenant {tenant.name} "
            "(only runs made through the generate function can be replayed)"
        )
    feedback = db.query(
        "SELECT edited_text_md, missing_sources, error_spans FROM feedback_events "
        "WHERE tenant_id = CAST(:t AS uuid) AND run_id = CAST(:r AS uuid) ORDER BY created_at, id",
        t=tenant.id,
        r=run_id,
    )
    edited = [f["edited_text_md"] for f in feedback if f["edited_text_md"]]
    missing = list({m["raw"]: m for f in feedback for m in f["missing_sources"]}.values())
    labels = sorted({s["label"] for f in feedback for s in f["error_spans"]})
    if not edited and not missing:
        raise GoldenError(f"run {run_id} has no feedback with an edited text or missing sources")
    row = db.one(
        "INSERT INTO golden_cases (id, tenant_id, run_id, doc_type, request, expected_md, missing_sources, "
        "error_labels) VALUES (CAST(:id AS uuid), CAST(:t AS uuid), CAST(:r AS uuid), :doc_type, "
        "CAST(:request AS jsonb), :expected, CAST(:missing AS jsonb), CAST(:labels AS jsonb)) "
        "ON CONFLICT (tenant_id, run_id) DO UPDATE SET expected_md = EXCLUDED.expected_md, "
        "missing_sources = EXCLUDED.missing_sources, error_labels = EXCLUDED.error_labels "
        "RETURNING id, run_id, doc_type, expected_md IS NOT NULL AS has_expected, missing_sources, "
        "error_labels",
        id=str(uuid.uuid4()),
        t=tenant.id,
        r=run_id,
        doc_type=run["doc_type"],
        request=db.jsonb(run["request"]),
        expected=edited[-1] if edited else None,
        missing=db.jsonb(missing),
        labels=db.jsonb(labels),
    )
    assert row is not None
    return {**row, "id": str(row["id"]), "run_id": str(row["run_id"])}


def cases(tenant_id: str | None) -> list[dict[str, Any]]:
    return db.query(
        "SELECT * FROM golden_cases WHERE CAST(:t AS uuid) IS NULL OR tenant_id = CAST(:t AS uuid) "
        "ORDER BY created_at, id",
        t=tenant_id,
    )


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def token_f1(produced: str, expected: str) -> float:
    got, want = _tokens(produced), _tokens(expected)
    if not got or not want:
        return 0.0
    counts: dict[str, int] = {}
    for token in want:
        counts[token] = counts.get(token, 0) + 1
    overlap = 0
    for token in got:
        if counts.get(token, 0) > 0:
            counts[token] -= 1
            overlap += 1
    if not overlap:
        return 0.0
    precision, recall = overlap / len(got), overlap / len(want)
    return 2 * precision * recall / (precision + recall)


def missing_recall(citations: list[dict[str, Any]], missing: list[dict[str, Any]]) -> float | None:
    """Share of the sources the lawyer missed that the new draft cites (matched on id, label or title)."""
    if not missing:
        return None
    cited = [" ".join(str(c.get(k) or "") for k in ("source_id", "label", "title")).lower() for c in citations]
    found = sum(1 for m in missing if any(m["raw"].lower() in c or _id_in(c, m["raw"]) for c in cited))
    return found / len(missing)


def _id_in(cited: str, raw: str) -> bool:
    source_id = cited.split(" ", 1)[0]
    return bool(source_id) and source_id in raw.lower()


def evaluate(tenant: tenants.Tenant | None, *, dry_run: bool, budget_s: float) -> dict[str, Any]:
    """Replay every case (of one tenant, or all) and store the scores under one eval_id.

    Stops starting new cases once budget_s is spent (`complete: false`): the eval covers a prefix.
    """
    from harvey.drafting import pipeline, runs

    todo = cases(tenant.id if tenant else None)
    if dry_run:
        return {"cases": len(todo)}
    eval_id = str(uuid.uuid4())
    scores: list[dict[str, Any]] = []
    owners: dict[str, tenants.Tenant] = {}
    deadline = time.monotonic() + budget_s
    for case in todo:
        if time.monotonic() >= deadline:
            break
        owner = owners.setdefault(str(case["tenant_id"]), tenants.by_id(str(case["tenant_id"])))
        job = runs.job_from_row({**case["request"], "user_id": "golden_eval"})
        score: dict[str, Any] = {"case_id": str(case["id"]), "status": "failed"}
        try:
            result = pipeline.run(owner, job.req, request_id=job.request_id).model_dump(mode="json")
        except pipeline.GenerationError as err:
            score.update(run_id=err.run_id, error=err.message)
        else:
            document = result.get("document_md") or ""
            score.update(
                run_id=result["run_id"],
                status=result["status"],
                faithfulness=result["faithfulness_report"]["score"],
                citations=len(result["citations"]),
                missing_source_recall=missing_recall(result["citations"], case["missing_sources"]),
                text_f1=round(token_f1(document, case["expected_md"]), 4) if case["expected_md"] else None,
            )
        db.query(
            "INSERT INTO golden_runs (id, eval_id, case_id, tenant_id, run_id, status, faithfulness, "
            "citations, "
            "missing_source_recall, text_f1, error) VALUES (CAST(:id AS uuid), CAST(:eval AS uuid), "
            "CAST(:case AS uuid), CAST(:t AS uuid), CAST(:run AS uuid), :status, :faith, :citations, "
            ":recall, "
            ":f1, :error)",
            id=str(uuid.uuid4()),
            eval=eval_id,
            case=score["case_id"],
            t=owner.id,
            run=score.get("run_id"),
            status=score["status"],
            faith=score.get("faithfulness"),
            citations=score.get("citations"),
            recall=score.get("missing_source_recall"),
            f1=score.get("text_f1"),
            error=score.get("error"),
        )
        scores.append(score)
    complete = len(scores) == len(todo)
    return {
        "eval_id": eval_id,
        "cases": len(scores),
        "of_cases": len(todo),
        "complete": complete,
        **_means(scores),
    }


def _means(scores: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(key: str) -> float | None:
        values = [s[key] for s in scores if s.get(key) is not None]
        return round(sum(values) / len(values), 4) if values else None

    return {
        "failed": sum(1 for s in scores if s["status"] == "failed"),
        "mean_faithfulness": mean("faithfulness"),
        "mean_citations": mean("citations"),
        "mean_missing_source_recall": mean("missing_source_recall"),
        "mean_text_f1": mean("text_f1"),
    }
