"""Typed request bodies at the HTTP edge; every rejection names the offending field."""

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
