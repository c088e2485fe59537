"""Qdrant server adapter on qdrant-client (also runs on its local mode, which the contract tests use)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

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


def _match(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


@contextmanager
def _reachable(what: str) -> Iterator[None]:
    """Transport failures become StoreUnavailable; 4xx answers are bugs and propagate."""
    try:
        yield
    except ResponseHandlingException as exc:
        raise StoreUnavailable(f"Qdrant unreachable during {what}: {exc}") from exc
    except UnexpectedResponse as exc:
        if exc.status_code is not None and exc.status_code >= 500:
            raise StoreUnavailable(f"Qdrant failed during {what}: {exc}") from exc
        raise


class ServerStore:
    def __init__(
        self,
        collection: str,
        dim: int,
        *,
        url: str | None = None,
        api_key: str | None = None,
        client: QdrantClient | None = None,
    ) -> None:
        self._collection = collection
        # No version probe at start-up: it costs a round trip on every cold start.
        self._client = client or QdrantClient(url=url, api_key=api_key, timeout=10, check_compatibility=False)
        with _reachable("collection setup"):
            if not self._client.collection_exists(collection):
                self._client.create_collection(
                    collection,
                    vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
                    sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                )
                with warnings.catch_warnings():
                    # Local mode warns that it ignores payload indexes; a server uses them.
                    warnings.filterwarnings("ignore", "Payload indexes have no effect", UserWarning)
                    self._client.create_payload_index(
                        collection,
                        TENANT_FIELD,
                        models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
                    )
                    self._client.create_payload_index(collection, DOCUMENT_FIELD, models.PayloadSchemaType.KEYWORD)

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        batch = [
            models.PointStruct(
                id=p.id,
                vector={
                    DENSE: p.dense,
                    SPARSE: models.SparseVector(indices=p.sparse.indices, values=p.sparse.values),
                },
                payload=p.payload,
            )
            for p in points
        ]
        with _reachable("upsert"):
            self._client.upsert(self._collection, batch, wait=True)

    def delete_document(self, tenant_id: str, document_id: str) -> int:
        selector = models.Filter(must=[_match(TENANT_FIELD, tenant_id), _match(DOCUMENT_FIELD, document_id)])
        with _reachable("delete"):
            removed = self._client.count(self._collection, count_filter=selector, exact=True).count
            if removed:
                self._client.delete(self._collection, models.FilterSelector(filter=selector), wait=True)
        return removed

    def count(self, tenant_id: str, document_id: str | None = None) -> int:
        conditions: list[models.Condition] = [_match(TENANT_FIELD, tenant_id)]
        if document_id is not None:
            conditions.append(_match(DOCUMENT_FIELD, document_id))
        with _reachable("count"):
            return self._client.count(self._collection, count_filter=models.Filter(must=conditions), exact=True).count

    def hybrid_search(
        self,
        tenant_id: str,
        dense: list[float],
        sparse: SparseVector,
        limit: int,
        fusion: FusionParams,
    ) -> list[ScoredRecord]:
        tenant = models.Filter(must=[_match(TENANT_FIELD, tenant_id)])
        prefetch = [models.Prefetch(query=dense, using=DENSE, limit=fusion.candidates, filter=tenant)]
        weights = [fusion.dense_weight]
        if sparse.indices:
            prefetch.append(
                models.Prefetch(
                    query=models.SparseVector(indices=sparse.indices, values=sparse.values),
                    using=SPARSE,
                    limit=fusion.candidates,
                    filter=tenant,
                    # IDF over this tenant's chunks only: term statistics must not leak across tenants.
                    params=models.SearchParams(idf=models.IdfCorpusParams(corpus=tenant)),
                )
            )
            weights.append(fusion.sparse_weight)
        with _reachable("search"):
            result = self._client.query_points(
                self._collection,
                prefetch=prefetch,
                query=models.RrfQuery(rrf=models.Rrf(k=fusion.rrf_k, weights=weights)),
                query_filter=tenant,
                limit=limit,
                with_payload=True,
            )
        return [ScoredRecord(id=str(p.id), score=p.score, payload=dict(p.payload or {})) for p in result.points]

    def ping(self) -> None:
        try:
            self._client.get_collections()
        except (ResponseHandlingException, UnexpectedResponse) as exc:
            raise StoreUnavailable(f"Qdrant unreachable: {exc}") from exc

    def close(self) -> None:
        self._client.close()

    def drop(self) -> None:
        with _reachable("drop"):
            self._client.delete_collection(self._collection)
        self.close()
