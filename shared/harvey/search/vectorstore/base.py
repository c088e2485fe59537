"""The vector-store contract shared by the Edge and server adapters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from harvey.search.analyzer import SparseVector

DENSE = "dense"
SPARSE = "sparse"
TENANT_FIELD = "tenant_id"
DOCUMENT_FIELD = "document_id"


class StoreUnavailable(Exception):
    """Qdrant cannot be reached (server) or its storage cannot be opened (edge)."""


@dataclass(frozen=True)
class StoredPoint:
    id: str
    dense: list[float]
    sparse: SparseVector
    payload: dict  # must hold tenant_id and document_id


@dataclass(frozen=True)
class ScoredRecord:
    id: str
    score: float
    payload: dict


@dataclass(frozen=True)
class FusionParams:
    """How the two candidate lists are fused: RRF constant, weights (dense, sparse), candidates per list."""

    rrf_k: int = 60
    dense_weight: float = 1.0
    sparse_weight: float = 1.0
    candidates: int = 100


class VectorStore(Protocol):
    """Every read and delete is scoped to one tenant; points carry `tenant_id` in their payload."""

    def upsert(self, points: Sequence[StoredPoint]) -> None: ...

    def delete_document(self, tenant_id: str, document_id: str) -> int: ...

    def count(self, tenant_id: str, document_id: str | None = None) -> int: ...

    def hybrid_search(
        self,
        tenant_id: str,
        dense: list[float],
        sparse: SparseVector,
        limit: int,
        fusion: FusionParams,
    ) -> list[ScoredRecord]: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...

    def drop(self) -> None:
        """Delete the whole collection (throw-away evaluation and benchmark indexes)."""
        ...
