"""analyze → retrieve → draft → critique → revise → format, with every step timed.

`run` is the one entry point used by the HTTP function, the CloudEvent path and the
CLI, so all three return the same JSON and write the same audit row. Every run,
failed ones included, writes exactly one `run_audit` row.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harvey import events, metrics
from harvey.config import get_settings
from harvey.drafting import prompts, references
from harvey.drafting.critique import classify_area, score_quality
from harvey.search import cache, vigencia
from harvey.store import audit
from harvey.store.tenants import Tenant

log = logging.getLogger("harvey.drafting.pipeline")

EVENT_GENERATED = "com.harvey.document.generated"


class GenerationError(Exception):
    """A run that could not produce a draft; `status` is the HTTP answer it deserves."""

    def __init__(self, status: int, message: str, run_id: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.message, self.run_id, self.retry_after = status, message, run_id, retry_after


@dataclass
class GenerateInput:
    doc_type: str
    task: str
    facts: str = ""
    parties: dict[str, str] = field(default_factory=dict)
    top_k: int | None = None
    user_id: str | None = None
    request_id: str | None = None

    def canonical(self) -> dict[str, Any]:
        return {
            "doc_type": self.doc_type, "task": self.task, "facts": self.facts,
            "parties": self.parties, "top_k": self.top_k,
        }  # fmt: skip


class _Trace:
    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def step(self, name: str, started: float, **detail: Any) -> None:
        self.steps.append({"step": name, "ms": round((time.perf_counter() - started) * 1000, 2), **detail})

    @property
    def timings_ms(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for s in self.steps:
            totals[s["step"]] = round(totals.get(s["step"], 0.0) + s["ms"], 2)
        return totals


def _retrieve(tenant: Tenant, query: str, top_k: int) -> tuple[list[dict[str, Any]], bool]:
    from harvey.search.retrieval import open_index

    index = open_index()
    cached = cache.get(tenant.id, index.version, query, top_k)
    if cached is not None:
        return cached, True
    hits = [
        {
            "chunk_id": h.chunk.chunk_id, "source_id": h.chunk.document_id, "label": h.chunk.label,
            "title": h.chunk.title, "text": h.chunk.text, "metadata": h.chunk.metadata, "score": round(h.score, 4),
        }
        for h in index.search(tenant.id, query, top_k)
    ]  # fmt: skip
    cache.put(tenant.id, index.version, query, top_k, hits)
    return hits, False


def _model_chain(tenant: Tenant) -> list[str]:
    chain = get_settings().llm_chain or ["harvey/extractive"]
    return chain[-1:] if tenant.force_fallback else chain


def run(tenant: Tenant, req: GenerateInput, *, run_id: str | None = None) -> dict[str, Any]:
    """Draft one document; raises GenerationError (already audited) when it cannot."""
    from harvey import faithfulness, pii
    from harvey.store import limits

    settings = get_settings()
    run_id = run_id or str(uuid.uuid4())
    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    trace = _Trace()
    chain = _model_chain(tenant)
    top_k = req.top_k or settings.top_k
    input_text = " ".join([req.task, req.facts, *req.parties.values()])
    input_matches = pii.detect(input_text, names=True)
    record = audit.RunRecord(
        run_id=run_id,
        tenant_id=tenant.id,
        task=pii.redact(req.task, names=True)[0],
        doc_type=req.doc_type,
        user_id=req.user_id,
        request_id=req.request_id,
        prompt_version=settings.prompt_version,
        input_hash=audit.sha256_text(audit.canonical_json(req.canonical())),
        started_at=started_at,
        ended_at=started_at,
        success=False,
        policy_snapshot={
            "llm_chain": chain,
            "flags": tenant.flags,
            "top_k": top_k,
            "max_revisions": settings.max_revisions,
            "prompt_version": settings.prompt_version,
            "embedding_model": settings.embedding_model,
            "faithfulness_threshold": faithfulness.THRESHOLD,
        },  # fmt: skip
    )
    try:
        limits.check_budget(tenant)  # inside the try: a spent budget is a failed run, audited like any other
        return _run_steps(tenant, req, record, trace, chain, top_k, input_matches, clock)
    except GenerationError:
        raise
    except Exception as exc:
        status, message, retry_after, reason = _classify_failure(exc)
        _finish_failed(record, trace, clock, message, reason)
        raise GenerationError(status, message, run_id, retry_after) from exc


def _classify_failure(exc: Exception) -> tuple[int, str, int | None, str]:
    from harvey.drafting.llm import AllModelsFailed
    from harvey.search.retrieval import StoreUnavailable
    from harvey.store.db import DatabaseUnavailable
    from harvey.store.limits import BudgetExhausted

    if isinstance(exc, BudgetExhausted):
        # 402, not 429: it lasts until the month ends, and a broker retries a 429 (each retry a new failed run).
        return 402, str(exc), None, "budget"
    if isinstance(exc, AllModelsFailed):
        # Provider error text can name deployments or resources: clients get the models tried, the log the rest.
        tried = ", ".join(a["model"] for a in exc.attempts)
        log.warning("every model failed", extra={"error": str(exc)[:1000]})
        return 503, f"no language model is available right now (tried {tried})", 30, "llm"
    if isinstance(exc, StoreUnavailable):
        return 503, f"the document index is unreachable: {exc}", 10, "qdrant"
    if isinstance(exc, DatabaseUnavailable):
        return 503, f"the database is unreachable: {exc}", 10, "postgres"
    log.exception("generation failed unexpectedly")
    return 500, f"internal error ({type(exc).__name__}); see the logs for this run_id", None, "internal"


def _finish_failed(record: audit.RunRecord, trace: _Trace, clock: float, message: str, reason: str) -> None:
    record.success = False
    record.error_message = message[:2000]
    record.ended_at = datetime.now(UTC)
    record.execution_time_ms = int((time.perf_counter() - clock) * 1000)
    record.agent_trace = trace.steps
    metrics.GENERATION_FAILURES.labels(reason=reason).inc()
    log.error("generation failed", extra={"run_id": record.run_id, "reason": reason, "error": message[:500]})
    head = audit.write(record)  # a DatabaseUnavailable here propagates: the caller answers 503
    log.info("failed run audited", extra={"run_id": record.run_id, "audit_seq": head["seq"],
                                          "audit_row_hash": head["row_hash"]})  # fmt: skip


def _run_steps(
    tenant: Tenant,
    req: GenerateInput,
    record: audit.RunRecord,
    trace: _Trace,
    chain: list[str],
    top_k: int,
    input_matches: list,
    clock: float,
) -> dict[str, Any]:
    from harvey import faithfulness, pii
    from harvey.drafting import judge, llm

    settings = get_settings()
    t = time.perf_counter()
    area = classify_area(f"{req.task} {req.facts}")
    trace.step("analyze", t, doc_type=req.doc_type, area=area)

    t = time.perf_counter()
    hits, cached = _retrieve(tenant, f"{req.task}\n{req.facts}".strip(), top_k)
    trace.step("retrieve", t, hits=len(hits), cached=cached)
    if not hits:
        message = "no indexed source matches this task: ingest the tenant's documents first (harvey ingest)"
        _finish_failed(record, trace, clock, message, "no_sources")
        raise GenerationError(422, message, record.run_id)

    sources = [prompts.Source(n=i, label=h["label"], title=h["title"], text=h["text"]) for i, h in enumerate(hits, 1)]
    by_number = {s.n: s.text for s in sources}
    draft_request = prompts.DraftRequest(req.doc_type, area, req.task, req.facts, req.parties, sources)
    record.context_docs_hash = audit.sha256_text(
        audit.canonical_json([{"n": s.n, "label": s.label, "text": s.text} for s in sources])
    )

    t = time.perf_counter()
    budget = llm.Budget.start()  # one deadline and failure budget for the draft and every revision
    completion = llm.complete(prompts.draft_messages(draft_request), chain, budget)
    trace.step("draft", t, model=completion.model, fallbacks=len(completion.fallbacks_tried))
    model_seconds = completion.seconds
    tokens_in, tokens_out, cost = completion.tokens_input, completion.tokens_output, completion.cost_usd
    fallbacks = list(completion.fallbacks_tried)
    draft_md = completion.text

    revisions = 0
    while True:
        t = time.perf_counter()
        report = faithfulness.assess(prompts.claim_sections(draft_md), by_number, judge.from_settings())
        unknown = sorted({n for n in faithfulness.parse_citations(draft_md) if n not in by_number})
        quality = score_quality(req, draft_md, report, hits)
        weak = [s for s in report["sentences"] if s["citations"] and not s["supported"]]
        unsupported = [s["text"] for s in weak]
        issues = [f"citação [{n}] não corresponde a nenhuma fonte" for n in unknown]
        issues += [prompts.unsupported_issue(s) for s in weak]
        issues += [f"seção ausente: {s}" for s in quality["missing_sections"]]
        trace.step(
            "critique", t, overall=quality["overall"], verdict=quality["verdict"],
            unsupported=len(unsupported), unknown_citations=unknown,
        )  # fmt: skip
        if not issues or revisions >= settings.max_revisions:
            break
        t = time.perf_counter()
        revision = llm.complete(prompts.revise_messages(draft_request, draft_md, issues, unsupported), chain, budget)
        revisions += 1
        trace.step("revise", t, model=revision.model, round=revisions)
        model_seconds += revision.seconds
        tokens_in += revision.tokens_input
        tokens_out += revision.tokens_output
        cost += revision.cost_usd
        fallbacks += revision.fallbacks_tried
        draft_md = revision.text
        completion = revision

    t = time.perf_counter()
    draft_md = faithfulness.strip_unknown_citations(draft_md, set(by_number)).rstrip() + "\n"
    report = faithfulness.assess(prompts.claim_sections(draft_md), by_number, judge.from_settings())
    cited = sorted(set(faithfulness.parse_citations(draft_md)))
    citation_rows = [
        {
            "n": n, "source_id": hits[n - 1]["source_id"], "title": hits[n - 1]["title"],
            "label": hits[n - 1]["label"], "excerpt": _excerpt(hits[n - 1]["text"]), "score": hits[n - 1]["score"],
            **vigencia.citation_fields(hits[n - 1]["text"], hits[n - 1]["metadata"]),
        }
        for n in cited
    ]  # fmt: skip
    report = vigencia.flag_questioned(report, {row["n"]: row["vigencia"] for row in citation_rows})
    reference_section = references.reference_list(
        [{**row, "metadata": hits[row["n"] - 1]["metadata"]} for row in citation_rows]
    )
    document_md = draft_md + ("\n" + reference_section if reference_section else "")
    trace.step("format", t, citations=len(cited))

    sources_used = [
        {
            "n": n, "source_id": hits[n - 1]["source_id"], "chunk_id": hits[n - 1]["chunk_id"],
            "label": hits[n - 1]["label"], "text_sha256": audit.sha256_text(hits[n - 1]["text"]),
        }
        for n in cited
    ]  # fmt: skip
    pii_report = {
        "input": pii.report(input_matches),
        "output": pii.report(pii.detect(document_md, names=True)),
    }
    record.success = True
    record.model_used = completion.model
    record.output_hash = audit.sha256_text(document_md)
    record.sources_used = sources_used
    record.faithfulness_report = _redacted_report(report)
    record.pii_report = pii_report
    record.tokens_input, record.tokens_output = tokens_in, tokens_out
    record.estimated_cost_usd = cost
    record.agent_trace = trace.steps
    record.ended_at = datetime.now(UTC)
    record.execution_time_ms = int((time.perf_counter() - clock) * 1000)
    head = audit.write(record)

    withheld = tenant.logs_only
    metrics.DOCUMENTS_GENERATED.labels(doc_type=req.doc_type).inc()
    metrics.FAITHFULNESS.labels(doc_type=req.doc_type).observe(report["score"])
    events.emit(
        EVENT_GENERATED,
        {
            "run_id": record.run_id, "tenant_id": tenant.id, "doc_type": req.doc_type,
            "model_used": completion.model, "faithfulness_score": report["score"],
            "output_hash": record.output_hash, "withheld": withheld,
            # the chain head, kept by whoever consumes the event: `harvey audit verify --anchor`
            "audit_seq": head["seq"], "audit_row_hash": head["row_hash"],
        },
        subject=record.run_id,
        run_id=record.run_id,
    )  # fmt: skip
    log.info(
        "document generated",
        extra={"run_id": record.run_id, "doc_type": req.doc_type, "model": completion.model,
               "faithfulness": report["score"], "ms": record.execution_time_ms,
               "audit_seq": head["seq"], "audit_row_hash": head["row_hash"]},
    )  # fmt: skip
    timings = trace.timings_ms
    timings["model"] = round(model_seconds * 1000, 2)
    timings["total"] = float(record.execution_time_ms)
    return {
        "run_id": record.run_id,
        "status": "withheld" if withheld else "succeeded",
        "document_md": None if withheld else document_md,
        "citations": [] if withheld else citation_rows,
        "sources_used": sources_used,
        "faithfulness_report": report,
        "quality": quality,
        "pii_report": pii_report,
        "model_used": completion.model,
        "fallbacks_tried": fallbacks,
        "revisions": revisions,
        "timings_ms": timings,
    }


def _redacted_report(report: dict[str, Any]) -> dict[str, Any]:
    """The faithfulness report as audited: sentence texts without personal data (the hash keeps the proof)."""
    from harvey import pii

    sentences = [{**s, "text": pii.redact(s["text"], names=True)[0]} for s in report["sentences"]]
    return {**report, "sentences": sentences}


def _excerpt(text: str, limit: int = 320) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: text.rfind(" ", 0, limit)] + " …"
