"""Typed request bodies at the HTTP edge; every rejection names the offending field."""

from __future__ import annotations

from typing import Literal

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
