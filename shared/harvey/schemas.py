"""Typed requests and results, shared by every layer from the edge to the pipeline.

They live at the bottom of the package tree so the pipeline takes the request the edge parsed and
returns the result the edge serialises, with no copies between. Every rejection names the field.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DocType = Literal["peticao_inicial", "contestacao", "recurso", "parecer", "contrato", "notificacao"]


class GenerateRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    doc_type: DocType
    task: str = Field(min_length=3, max_length=4000)
    facts: str = Field("", max_length=20000)
    parties: dict[str, str] = Field(default_factory=dict, max_length=20)
    top_k: int | None = Field(None, ge=1, le=20)
    user_id: str | None = Field(None, max_length=200)

    def canonical(self) -> dict[str, Any]:
        """The fields that decide the draft (not who asked): what the audit's input_hash covers."""
        return {
            "doc_type": self.doc_type,
            "task": self.task,
            "facts": self.facts,
            "parties": self.parties,
            "top_k": self.top_k,
        }


def describe(error: ValidationError) -> tuple[str, str]:
    """(field, message) for the first problem, in words a client developer can act on."""
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "body"
    kind = first["type"]
    if kind == "missing":
        return field, f"'{field}' is required"
    if kind == "extra_forbidden":
        return field, f"'{field}' is not a known field"
    if kind == "literal_error":
        allowed = first.get("ctx", {}).get("expected", "")
        return field, f"'{field}' must be one of {allowed}"
    return field, f"'{field}': {first['msg']}"


MAX_DEPTH = 32
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


class InvalidRequest(ValueError):
    """A request that can never succeed as sent (400, final for a broker); `field` names the culprit."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class UnsafeInput(InvalidRequest):
    """A value no field may hold: NUL, a lone surrogate, or nesting deeper than MAX_DEPTH."""


def check_text(value: str, field: str) -> str:
    """`value` unchanged, or UnsafeInput: PostgreSQL text cannot hold NUL, and a lone surrogate
    cannot be encoded as UTF-8 anywhere downstream (database, logs, the response itself)."""
    bad = _BAD_TEXT.search(value)
    if bad is not None:
        what = "a NUL character" if bad.group() == "\x00" else "an unpaired surrogate (not valid Unicode)"
        raise UnsafeInput(field, f"'{field}' contains {what}")
    return value


def check_json(value: Any, field: str = "body", depth: int = 0) -> None:
    """Walk a parsed JSON value: every key and string checked, nesting bounded (what reads it next,
    pydantic and json.dumps, recurses)."""
    if depth > MAX_DEPTH:
        raise UnsafeInput(field, f"'{field}' nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        check_text(value, field)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, field)
            check_json(item, key if field == "body" else f"{field}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_json(item, f"{field}.{i}", depth + 1)


class Citation(BaseModel):
    """A source the draft cites as [n]: what a reader needs to check it."""

    n: int
    source_id: str
    title: str
    label: str
    excerpt: str
    score: float
    page: int | None = None
    vigencia: str | None = None
    vigencia_atos: list[dict[str, Any]] = Field(default_factory=list)


class SourceUsed(BaseModel):
    """What the audit row keeps of a cited source: enough to prove which text was cited."""

    n: int
    source_id: str
    chunk_id: str
    label: str
    text_sha256: str


class SentenceReport(BaseModel):
    text: str
    citations: list[int]
    support_score: float
    supported: bool
    screen: bool
    judge: dict[str, Any] | None = None
    flags: list[str] = Field(default_factory=list)


class FaithfulnessReport(BaseModel):
    """Share of claims backed by what they cite (`score`), and the verdict for every sentence."""

    score: float
    mean_support: float
    threshold: float
    sentences: list[SentenceReport]
    unsupported: int
    uncited_claims: int
    judge: dict[str, Any] | None = None


class DraftResult(BaseModel):
    """One generate run's answer: the same for HTTP, events, streaming and the CLI."""

    run_id: str
    status: Literal["succeeded", "withheld"]
    document_md: str | None = Field(description="the draft in Markdown; null when the tenant is logs-only")
    citations: list[Citation]
    sources_used: list[SourceUsed]
    faithfulness_report: FaithfulnessReport
    quality: dict[str, Any]
    pii_report: dict[str, Any]
    model_used: str
    fallbacks_tried: list[Any]
    revisions: int
    timings_ms: dict[str, float]
    review_url: str | None = Field(None, description="signed link to the review page (HARVEY_REVIEW_BASE_URL)")


class RunAccepted(BaseModel):
    run_id: str
    status: Literal["queued"]
    location: str


class RunView(BaseModel):
    """A run as `GET /runs/{run_id}` shows it."""

    run_id: str
    status: Literal["queued", "running", "succeeded", "failed", "withheld"]
    doc_type: str
    created_at: str
    updated_at: str
    result: DraftResult | None = None
    error: dict[str, Any] | None = None


class ErrorDetail(BaseModel):
    status: int
    message: str
    field: str | None = Field(None, description="the request field, header or parameter at fault")


class ErrorBody(BaseModel):
    """Every error, from every function: JSON, never internals."""

    error: ErrorDetail
    run_id: str | None = None
