"""analyze → retrieve → draft → critique → revise → format, with every step timed.

`run` is the one entry point used by the HTTP function, the CloudEvent path, streaming and the
CLI, so all of them return the same `DraftResult` and write the same audit row. Every run,
failed ones included, writes exactly one `run_audit` row.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from harvey import events, metrics
from harvey.config import get_settings
from harvey.drafting import critique, prompts, references
from harvey.schemas import DraftResult, GenerateRequest
from harvey.search import cache, vigencia
from harvey.store import audit
from harvey.store.tenants import Tenant

log = logging.getLogger("harvey.drafting.pipeline")

EVENT_GENERATED = "com.harvey.document.generated"
# `progress(stage, data)`: "retrieved" once the sources are numbered, "section" for each section of
# the final draft. What a streaming client sees before the result.
Progress = Callable[[str, dict[str, Any]], None]


class GenerationError(Exception):
    """A run that could not produce a draft (already audited). `code` says why, in the run's own terms;
    the edge's error table turns each kind into an HTTP status."""

    code = "internal"

    def __init__(self, message: str, run_id: str, retry_after: int | None = None):
        super().__init__(message)
        self.message, self.run_id, self.retry_after = message, run_id, retry_after


class NoSources(GenerationError):
    code = "no_sources"


class BudgetSpent(GenerationError):
    code = "budget"


class ModelsUnavailable(GenerationError):
    code = "llm"


class IndexUnavailable(GenerationError):
    code = "qdrant"


class DatabaseDown(GenerationError):
    code = "postgres"


FAILURES: dict[str, type[GenerationError]] = {
    cls.code: cls
    for cls in (GenerationError, NoSources, BudgetSpent, ModelsUnavailable, IndexUnavailable, DatabaseDown)
}


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


@dataclass
class _Usage:
    """What the model calls of one run cost, summed over the draft and its revisions."""

    seconds: float = 0.0
    tokens_input: int = 0
    tokens_output: int = 0
    cost_usd: float = 0.0
    fallbacks: list = field(default_factory=list)

    def add(self, completion) -> None:  # noqa: ANN001 - an llm.Completion (llm is imported lazily)
        self.seconds += completion.seconds
        self.tokens_input += completion.tokens_input
        self.tokens_output += completion.tokens_output
        self.cost_usd += completion.cost_usd
        self.fallbacks += completion.fallbacks_tried


@dataclass
class _Run:
    """One run's state as it moves through the steps."""

    tenant: Tenant
    req: GenerateRequest
    record: audit.RunRecord
    chain: list[str]
    top_k: int
    input_matches: list
    progress: Progress | None
    clock: float = field(default_factory=time.perf_counter)
    trace: _Trace = field(default_factory=_Trace)
    usage: _Usage = field(default_factory=_Usage)

    def tell(self, stage: str, data: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress(stage, data)


def _retrieve(tenant: Tenant, query: str, top_k: int) -> tuple[list[prompts.Source], bool]:
    """The numbered sources for a query: from the tenant's cache, or the index."""
    from harvey.search.retrieval import open_index

    index = open_index()
    cached = cache.get(tenant.id, index.version, query, top_k)
    if cached is not None:
        return [prompts.Source(**s) for s in cached], True
    sources = [
        prompts.Source(
            n=n,
            label=h.chunk.label,
            title=h.chunk.title,
            text=h.chunk.text,
            source_id=h.chunk.document_id,
            chunk_id=h.chunk.chunk_id,
            metadata=h.chunk.metadata,
            score=round(h.score, 4),
        )
        for n, h in enumerate(index.search(tenant.id, query, top_k), 1)
    ]
    cache.put(tenant.id, index.version, query, top_k, [asdict(s) for s in sources])
    return sources, False


def _model_chain(tenant: Tenant) -> list[str]:
    chain = get_settings().llm_chain or ["harvey/extractive"]
    return chain[-1:] if tenant.force_fallback else chain


def run(
    tenant: Tenant,
    req: GenerateRequest,
    *,
    run_id: str | None = None,
    request_id: str | None = None,
    progress: Progress | None = None,
) -> DraftResult:
    """Draft one document; raises GenerationError (already audited) when it cannot."""
    from harvey import faithfulness, pii
    from harvey.store import limits

    settings = get_settings()
    run_id = run_id or str(uuid.uuid4())
    started_at = datetime.now(UTC)
    chain = _model_chain(tenant)
    top_k = req.top_k or settings.top_k
    input_text = " ".join([req.task, req.facts, *req.parties.values()])
    record = audit.RunRecord(
        run_id=run_id,
        tenant_id=tenant.id,
        task=pii.redact(req.task, names=True)[0],
        doc_type=req.doc_type,
        user_id=req.user_id,
        request_id=request_id,
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
        },
    )
    state = _Run(tenant, req, record, chain, top_k, pii.detect(input_text, names=True), progress)
    try:
        limits.check_budget(tenant)  # inside the try: a spent budget is a failed run, audited like any other
        return _steps(state)
    except GenerationError:
        raise
    except Exception as exc:
        failure = _classify_failure(exc, run_id)
        _finish_failed(state, failure)
        raise failure from exc


def _classify_failure(exc: Exception, run_id: str) -> GenerationError:
    from harvey.drafting.llm import AllModelsFailed
    from harvey.search.retrieval import StoreUnavailable
    from harvey.store.db import DatabaseUnavailable
    from harvey.store.limits import BudgetExhausted

    if isinstance(exc, BudgetExhausted):
        # its own kind, not a rate limit: it lasts until the month ends, and a broker retries a 429
        return BudgetSpent(str(exc), run_id)
    if isinstance(exc, AllModelsFailed):
        # Provider error text can name deployments or resources: clients get the models tried, the log the rest.
        tried = ", ".join(a["model"] for a in exc.attempts)
        log.warning("every model failed", extra={"error": str(exc)[:1000]})
        return ModelsUnavailable(f"no language model is available right now (tried {tried})", run_id, 30)
    if isinstance(exc, StoreUnavailable):
        return IndexUnavailable(f"the document index is unreachable: {exc}", run_id, 10)
    if isinstance(exc, DatabaseUnavailable):
        return DatabaseDown(f"the database is unreachable: {exc}", run_id, 10)
    log.exception("generation failed unexpectedly")
    return GenerationError(f"internal error ({type(exc).__name__}); see the logs for this run_id", run_id)


def _finish_failed(state: _Run, failure: GenerationError) -> None:
    record = state.record
    record.success = False
    record.error_message = failure.message[:2000]
    record.ended_at = datetime.now(UTC)
    record.execution_time_ms = int((time.perf_counter() - state.clock) * 1000)
    record.agent_trace = state.trace.steps
    metrics.GENERATION_FAILURES.labels(reason=failure.code).inc()
    log.error(
        "generation failed", extra={"run_id": record.run_id, "reason": failure.code, "error": failure.message[:500]}
    )
    head = audit.write(record)  # a DatabaseUnavailable here propagates: the caller answers 503
    log.info(
        "failed run audited",
        extra={"run_id": record.run_id, "audit_seq": head["seq"], "audit_row_hash": head["row_hash"]},
    )


def _steps(state: _Run) -> DraftResult:
    req, trace = state.req, state.trace
    t = time.perf_counter()
    area = critique.classify_area(f"{req.task} {req.facts}")
    trace.step("analyze", t, doc_type=req.doc_type, area=area)

    t = time.perf_counter()
    sources, cached = _retrieve(state.tenant, f"{req.task}\n{req.facts}".strip(), state.top_k)
    trace.step("retrieve", t, hits=len(sources), cached=cached)
    if not sources:
        failure = NoSources(
            "no indexed source matches this task: ingest the tenant's documents first (harvey ingest)",
            state.record.run_id,
        )
        _finish_failed(state, failure)
        raise failure
    state.tell("retrieved", {"sources": [_source_view(s) for s in sources]})
    state.record.context_docs_hash = audit.sha256_text(
        audit.canonical_json([{"n": s.n, "label": s.label, "text": s.text} for s in sources])
    )
    draft_request = prompts.DraftRequest(req.doc_type, area, req.task, req.facts, req.parties, sources)
    draft_md, model, review, revisions = _draft_and_revise(state, draft_request)
    return _finish(state, sources, draft_md, model, review, revisions)


def _draft_and_revise(state: _Run, draft_request: prompts.DraftRequest) -> tuple[str, str, critique.Review, int]:
    """The model's draft, revised while the critique finds issues (up to HARVEY_MAX_REVISIONS)."""
    from harvey.drafting import llm

    t = time.perf_counter()
    budget = llm.Budget.start()  # one deadline and failure budget for the draft and every revision
    completion = llm.complete(prompts.draft_messages(draft_request), state.chain, budget)
    state.trace.step("draft", t, model=completion.model, fallbacks=len(completion.fallbacks_tried))
    state.usage.add(completion)
    revisions = 0
    while True:
        t = time.perf_counter()
        review = critique.review(state.req, completion.text, draft_request.sources)
        state.trace.step(
            "critique",
            t,
            overall=review.quality["overall"],
            verdict=review.quality["verdict"],
            unsupported=len(review.unsupported),
            unknown_citations=review.unknown_citations,
        )
        if not review.issues or revisions >= get_settings().max_revisions:
            return completion.text, completion.model, review, revisions
        t = time.perf_counter()
        messages = prompts.revise_messages(draft_request, completion.text, review.issues, review.unsupported)
        completion = llm.complete(messages, state.chain, budget)
        revisions += 1
        state.trace.step("revise", t, model=completion.model, round=revisions)
        state.usage.add(completion)


def _finish(
    state: _Run, sources: list[prompts.Source], draft_md: str, model: str, review: critique.Review, revisions: int
) -> DraftResult:
    """References, the audit row, the event and the result of a draft that is done."""
    from harvey import faithfulness, pii

    tenant, req, record, trace = state.tenant, state.req, state.record, state.trace
    t = time.perf_counter()
    final_md = faithfulness.strip_unknown_citations(draft_md, {s.n for s in sources}).rstrip() + "\n"
    # the critique's report stands unless stripping changed the sentences it read
    report = review.report if final_md == draft_md.rstrip() + "\n" else critique.assess(final_md, sources)
    cited = [sources[n - 1] for n in sorted(set(faithfulness.parse_citations(final_md)))]
    citations = [
        {
            "n": s.n,
            "source_id": s.source_id,
            "title": s.title,
            "label": s.label,
            "excerpt": _excerpt(s.text),
            "score": s.score,
            "page": s.page,
            **vigencia.citation_fields(s.text, s.metadata),
        }
        for s in cited
    ]
    report = vigencia.flag_questioned(report, {row["n"]: row["vigencia"] for row in citations})
    reference_section = references.reference_list(
        [{**row, "metadata": s.metadata} for row, s in zip(citations, cited, strict=True)]
    )
    document_md = final_md + ("\n" + reference_section if reference_section else "")
    trace.step("format", t, citations=len(cited))
    for title, markdown in prompts.sections_of(final_md):
        state.tell("section", {"title": title, "markdown": markdown})

    sources_used = [
        {
            "n": s.n,
            "source_id": s.source_id,
            "chunk_id": s.chunk_id,
            "label": s.label,
            "text_sha256": audit.sha256_text(s.text),
        }
        for s in cited
    ]
    pii_report = {"input": pii.report(state.input_matches), "output": pii.report(pii.detect(document_md, names=True))}
    record.success = True
    record.model_used = model
    record.output_hash = audit.sha256_text(document_md)
    record.sources_used = sources_used
    record.faithfulness_report = _redacted_report(report)
    record.pii_report = pii_report
    record.tokens_input, record.tokens_output = state.usage.tokens_input, state.usage.tokens_output
    record.estimated_cost_usd = state.usage.cost_usd
    record.agent_trace = trace.steps
    record.ended_at = datetime.now(UTC)
    record.execution_time_ms = int((time.perf_counter() - state.clock) * 1000)
    head = audit.write(record)

    withheld = tenant.logs_only
    metrics.DOCUMENTS_GENERATED.labels(doc_type=req.doc_type).inc()
    metrics.FAITHFULNESS.labels(doc_type=req.doc_type).observe(report["score"])
    events.emit(
        EVENT_GENERATED,
        {
            "run_id": record.run_id,
            "tenant_id": tenant.id,
            "doc_type": req.doc_type,
            "model_used": model,
            "faithfulness_score": report["score"],
            "output_hash": record.output_hash,
            "withheld": withheld,
            # the chain head, kept by whoever consumes the event: `harvey audit verify --anchor`
            "audit_seq": head["seq"],
            "audit_row_hash": head["row_hash"],
        },
        subject=record.run_id,
        run_id=record.run_id,
    )
    log.info(
        "document generated",
        extra={
            "run_id": record.run_id,
            "doc_type": req.doc_type,
            "model": model,
            "faithfulness": report["score"],
            "ms": record.execution_time_ms,
            "audit_seq": head["seq"],
            "audit_row_hash": head["row_hash"],
        },
    )
    timings = trace.timings_ms
    timings["model"] = round(state.usage.seconds * 1000, 2)
    timings["total"] = float(record.execution_time_ms)
    return DraftResult.model_validate(
        {
            "run_id": record.run_id,
            "status": "withheld" if withheld else "succeeded",
            "document_md": None if withheld else document_md,
            "citations": [] if withheld else citations,
            "sources_used": sources_used,
            "faithfulness_report": report,
            "quality": review.quality,
            "pii_report": pii_report,
            "model_used": model,
            "fallbacks_tried": state.usage.fallbacks,
            "revisions": revisions,
            "timings_ms": timings,
        }
    )


def _source_view(source: prompts.Source) -> dict[str, Any]:
    return {
        "n": source.n,
        "source_id": source.source_id,
        "title": source.title,
        "label": source.label,
        "page": source.page,
    }


def _redacted_report(report: dict[str, Any]) -> dict[str, Any]:
    """The faithfulness report as audited: sentence texts without personal data (the hash keeps the proof)."""
    from harvey import pii

    sentences = [{**s, "text": pii.redact(s["text"], names=True)[0]} for s in report["sentences"]]
    return {**report, "sentences": sentences}


def _excerpt(text: str, limit: int = 320) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: text.rfind(" ", 0, limit)] + " …"
