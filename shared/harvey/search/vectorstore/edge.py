"""Qdrant Edge adapter: an in-process shard on local disk (no server, ~2 ms searches, fast import)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import qdrant_edge as qe

from harvey.search.analyzer import SparseVector
from harvey.search.vectorstore.base import (
    DENSE,
    DOCUMENT_FIELD,
    SPARSE,
    TENANT_FIELD,
    FusionParams,
    ScoredRecord,
    StoredPoint,
    StoreUnavailable,
)


def _match(key: str, value: str) -> qe.FieldCondition:
    return qe.FieldCondition(key=key, match=qe.MatchValue(value))


class EdgeStore:
    def __init__(self, path: Path, dim: int) -> None:
        self._path = path
        self._lock = threading.Lock()
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        try:
            if path.is_dir() and any(path.iterdir()):
                self._shard = qe.EdgeShard.load(str(path), config)
            else:
                path.mkdir(parents=True, exist_ok=True)
                self._shard = qe.EdgeShard.create(str(path), config)
                self._shard.update(
                    qe.UpdateOperation.create_field_index(TENANT_FIELD, qe.KeywordIndexParams(is_tenant=True))
                )
                self._shard.update(qe.UpdateOperation.create_field_index(DOCUMENT_FIELD, qe.PayloadSchemaType.Keyword))
        except (OSError, RuntimeError, ValueError) as exc:
            raise StoreUnavailable(f"cannot open Qdrant Edge shard at {path}: {exc}") from exc

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        batch = [
            qe.Point(
                id=p.id,
                vector={DENSE: p.dense, SPARSE: qe.SparseVector(p.sparse.indices, p.sparse.values)},
                payload=p.payload,
            )
            for p in points
        ]
        with self._lock:
            self._shard.update(qe.UpdateOperation.upsert_points(batch))
            self._shard.flush()

    def delete_document(self, tenant_id: str, document_id: str) -> int:
        selector = qe.Filter(must=[_match(TENANT_FIELD, tenant_id), _match(DOCUMENT_FIELD, document_id)])
        with self._lock:
            removed = self._shard.count(qe.CountRequest(exact=True, filter=selector))
            if removed:
                self._shard.update(qe.UpdateOperation.delete_points_by_filter(selector))
                self._shard.flush()
        return removed

    def count(self, tenant_id: str, document_id: str | None = None) -> int:
        conditions: list[qe.ConditionType] = [_match(TENANT_FIELD, tenant_id)]
        if document_id is not None:
            conditions.append(_match(DOCUMENT_FIELD, document_id))
        return self._shard.count(qe.CountRequest(exact=True, filter=qe.Filter(must=conditions)))

    def hybrid_search(
        self,
        tenant_id: str,
        dense: list[float],
        sparse: SparseVector,
        limit: int,
        fusion: FusionParams,
    ) -> list[ScoredRecord]:
        tenant = qe.Filter(must=[_match(TENANT_FIELD, tenant_id)])
        prefetches = [qe.Prefetch(limit=fusion.candidates, query=qe.Query.Nearest(dense, using=DENSE), filter=tenant)]
        weights = [fusion.dense_weight]
        if sparse.indices:
            prefetches.append(
                qe.Prefetch(
                    limit=fusion.candidates,
                    query=qe.Query.Nearest(qe.SparseVector(sparse.indices, sparse.values), using=SPARSE),
                    filter=tenant,
                    # IDF over this tenant's chunks only: term statistics must not leak across tenants.
                    params=qe.SearchParams(idf=qe.IdfParams(corpus=tenant)),
                )
            )
            weights.append(fusion.sparse_weight)
        # Edge orders equal RRF scores anew on every call (qdrant-edge-py 0.9.0), so the same question could
        # cite different sources: the whole fused list is fetched and ties broken by point id here.
        request = qe.QueryRequest(
            limit=max(limit, fusion.candidates * len(prefetches)),
            prefetches=prefetches,
            query=qe.Fusion.Rrf(k=fusion.rrf_k, weights=weights),  # type: ignore[arg-type]  # stub omits nested class
            filter=tenant,
            with_payload=True,
        )
        fused = sorted(self._shard.query(request), key=lambda p: (-p.score, str(p.id)))
        return [ScoredRecord(id=str(p.id), score=p.score, payload=dict(p.payload or {})) for p in fused[:limit]]

    def ping(self) -> None:
        try:
            self._shard.info()
        except Exception as exc:  # noqa: BLE001 - any engine error means the store is unusable
            raise StoreUnavailable(f"Qdrant Edge shard at {self._path} unusable: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._shard.close()

    def drop(self) -> None:
        self.close()
        shutil.rmtree(self._path, ignore_errors=True)
