"""Hybrid retrieval over a tenant's chunks: the one search path the product and its evaluation share.

Each chunk is stored with a dense vector (meaning, paraphrases) and a BM25-weighted sparse vector
from the Portuguese legal analyzer (exact words, article numbers); Qdrant fuses the two candidate
lists by reciprocal rank, and a learned linear reranker (`harvey.search.rerank`) re-scores the top of the
fused, dense and sparse lists with lexical-coverage and statute features. Heavy imports (qdrant, the
embedding model) happen when an index is opened, never at import time, so a cold function can answer
/healthz at once.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from harvey.search import analyzer, rerank
from harvey.search.chunking import Chunk
from harvey.search.vectorstore.base import FusionParams, StoredPoint, StoreUnavailable, VectorStore

if TYPE_CHECKING:
    from harvey.config import Settings
    from harvey.search.embeddings import Embedder

__all__ = ["Hit", "Index", "StoreUnavailable", "open_index"]

SCHEMA_VERSION = "2"  # 2: sparse vectors of split articles cover the whole article
ADD_BATCH = 64
# Tuned on the dev sets (see `harvey eval retrieval`). A small RRF constant trusts each list's top
# ranks. Long queries (exam-style questions, case narratives) are scored mostly lexically: their
# single e5 vector blurs many topics, and full weight on it cost OAB ~6 nDCG points.
SPARSE_WEIGHTS = analyzer.Bm25Weights(k1=0.9, b=0.4, avg_len=60.0)
FUSION = FusionParams(rrf_k=5, dense_weight=1.0, sparse_weight=1.0, candidates=100)
LONG_QUERY_TERMS = 20
LONG_QUERY_DENSE_WEIGHT = 0.5
# Pseudo-relevance feedback on the sparse side: +2 nDCG@10 overall, +5 on short search-log queries.
FEEDBACK_CHUNKS = 3
FEEDBACK_TERMS = 10
FEEDBACK_WEIGHT = 0.3
# A learned linear reranker (harvey.search.rerank) re-scores the union of each list's top RERANK_DEPTH chunks.
RERANK_DEPTH = 30
LEXICAL_DENSE_WEIGHT = 1e-6


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float


class Index:
    """A tenant-partitioned hybrid index; every read and delete is filtered by `tenant_id`."""

    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        sparse: analyzer.Bm25Weights = SPARSE_WEIGHTS,
        fusion: FusionParams = FUSION,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._sparse = sparse
        self._fusion = fusion
        self.version = index_version(embedder.name)

    def add(self, tenant_id: str, chunks: Sequence[Chunk], progress: Callable[[int], None] | None = None) -> int:
        """Upsert chunks (idempotent: ids derive from tenant + chunk id); `progress` gets each batch size."""
        lexical = _lexical_texts(chunks)
        for start in range(0, len(chunks), ADD_BATCH):
            batch = chunks[start : start + ADD_BATCH]
            dense = self._embedder.embed_documents([c.text for c in batch])
            points = [
                StoredPoint(
                    id=point_id(tenant_id, c.chunk_id),
                    dense=vector,
                    sparse=self._sparse.document(lexical[c.chunk_id]),
                    payload=_payload(tenant_id, c),
                )
                for c, vector in zip(batch, dense, strict=True)
            ]
            self._store.upsert(points)
            if progress:
                progress(len(batch))
        return len(chunks)

    def delete_document(self, tenant_id: str, document_id: str) -> int:
        return self._store.delete_document(tenant_id, document_id)

    def search(self, tenant_id: str, query: str, top_k: int) -> list[Hit]:
        if not query.strip() or top_k <= 0:
            return []
        pool, ranks = self.candidates(tenant_id, query, RERANK_DEPTH, fused_depth=top_k)
        if not pool:
            return []
        head = [
            rerank_candidate(key, chunk)
            for key, chunk in pool.items()
            if any(r.get(key, RERANK_DEPTH + 1) <= RERANK_DEPTH for r in ranks)
        ]
        head_ranks = [{key: rank for key, rank in r.items() if rank <= RERANK_DEPTH} for r in ranks]
        scored = rerank.rerank(query, head, head_ranks)
        # deeper fused results (top_k beyond the reranked pool) follow in their fused order
        reranked = {key for key, _ in scored}
        floor = min(score for _, score in scored)
        tail = [key for key, _ in sorted(ranks[0].items(), key=lambda item: item[1]) if key not in reranked]
        scored += [(key, floor - 1e-3 * (i + 1)) for i, key in enumerate(tail)]
        return [Hit(chunk=pool[key], score=score) for key, score in scored[:top_k]]

    def candidates(
        self, tenant_id: str, query: str, depth: int, fused_depth: int = 0
    ) -> tuple[dict[str, Chunk], list[dict[str, int]]]:
        """The reranker's pool: chunks by point id, and their 1-based ranks in each candidate list.

        Lists, in `rerank.FEATURES` order: the RRF fusion of dense and feedback-expanded sparse
        search (the first-stage ranking, `max(depth, fused_depth)` deep), dense alone, sparse alone,
        feedback-expanded sparse alone (`depth` deep each).
        """
        dense = self._embedder.embed_query(query)
        sparse = self._sparse.query(query)
        fusion = self._fusion
        if sum(sparse.values) > LONG_QUERY_TERMS:
            fusion = replace(fusion, dense_weight=fusion.dense_weight * LONG_QUERY_DENSE_WEIGHT)
        first = self._store.hybrid_search(tenant_id, dense, sparse, FEEDBACK_CHUNKS, fusion)
        if not first:
            return {}, []
        feedback = [r.payload["text"] for r in first[:FEEDBACK_CHUNKS]]
        expanded = self._sparse.expanded_query(query, feedback, FEEDBACK_TERMS, FEEDBACK_WEIGHT)
        # sparse-only lists: a negligible dense weight (not 0, which a server may reject) ranks dense-only points last
        lexical = replace(fusion, dense_weight=LEXICAL_DENSE_WEIGHT, sparse_weight=1.0)
        floor = 0.5 / (fusion.rrf_k + fusion.candidates + 1)  # below any sparse-ranked point's RRF score
        no_terms = analyzer.SparseVector(indices=[], values=[])
        lists = [
            self._store.hybrid_search(tenant_id, dense, expanded, max(depth, fused_depth), fusion),
            self._store.hybrid_search(tenant_id, dense, no_terms, depth, replace(fusion, dense_weight=1.0)),
            self._store.hybrid_search(tenant_id, dense, sparse, depth, lexical) if sparse.indices else [],
            self._store.hybrid_search(tenant_id, dense, expanded, depth, lexical) if expanded.indices else [],
        ]
        pool: dict[str, Chunk] = {}
        ranks: list[dict[str, int]] = []
        for i, records in enumerate(lists):
            kept = [r for r in records if r.score > floor] if i >= 2 else records
            for r in kept:
                pool.setdefault(r.id, _chunk(r.payload))
            ranks.append({r.id: i + 1 for i, r in enumerate(kept)})
        return pool, ranks

    def count(self, tenant_id: str) -> int:
        return self._store.count(tenant_id)

    def ping(self) -> None:
        self._store.ping()

    def close(self) -> None:
        self._store.close()

    def drop(self) -> None:
        """Delete the collection with every tenant's chunks (throw-away evaluation indexes)."""
        self._store.drop()


def storage_version(embedder_name: str) -> str:
    """Changes whenever stored vectors would differ: embedding model, analyzer, BM25 weights or schema."""
    bm25 = f"bm25-{SPARSE_WEIGHTS.k1}-{SPARSE_WEIGHTS.b}-{SPARSE_WEIGHTS.avg_len}"
    return f"{embedder_name}|{analyzer.VERSION}|{bm25}|s{SCHEMA_VERSION}"


def index_version(embedder_name: str) -> str:
    """Changes whenever search results could: what is stored, plus fusion and feedback settings."""
    fusion = f"rrf{FUSION.rrf_k}-{FUSION.dense_weight}-{FUSION.sparse_weight}-{FUSION.candidates}"
    fusion += f"-long{LONG_QUERY_TERMS}x{LONG_QUERY_DENSE_WEIGHT}"
    feedback = f"prf{FEEDBACK_CHUNKS}-{FEEDBACK_TERMS}-{FEEDBACK_WEIGHT}"
    return f"{storage_version(embedder_name)}|{fusion}|{feedback}|rerank{RERANK_DEPTH}-{_rerank_fingerprint()}"


def _rerank_fingerprint() -> str:
    """Short hash of the shipped reranker coefficients (read as bytes: no json/numpy import needed)."""
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "models", "rerank_linear.json")
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:8]


def collection_name(base: str, version: str) -> str:
    """One collection per storage version, so a model switch never mixes incompatible vectors."""
    return f"{base}_{hashlib.sha256(version.encode()).hexdigest()[:10]}"


def point_id(tenant_id: str, chunk_id: str) -> str:
    """Chunk ids repeat across tenants that ingest the same document; point ids must not."""
    return str(uuid.uuid5(uuid.UUID(chunk_id), tenant_id))


def _lexical_text(chunk: Chunk) -> str:
    """A prose chunk's title is searchable too, unless it is only the document id."""
    return chunk.text if chunk.label == chunk.document_id else f"{chunk.label}\n{chunk.text}"


def _lexical_texts(chunks: Sequence[Chunk]) -> dict[str, str]:
    """Text behind each chunk's sparse vector: the whole article for pieces of a split article.

    A question about an article often matches words spread over its paragraphs; scoring each piece
    alone lost 3 nDCG points on the OAB set. The dense vector still describes the piece itself, so
    the fused ranking points at the right paragraph of the right article.
    """
    articles: dict[tuple[str, str], list[Chunk]] = defaultdict(list)
    out: dict[str, str] = {}
    for chunk in chunks:
        if "article" in chunk.metadata:
            articles[(chunk.document_id, str(chunk.metadata["article"]))].append(chunk)
        else:
            out[chunk.chunk_id] = _lexical_text(chunk)
    for pieces in articles.values():
        texts = [c.text for c in sorted(pieces, key=lambda c: c.position)]
        shared = os.path.commonprefix(texts) if len(texts) > 1 else ""  # the repeated caput
        whole = "\n".join([texts[0], *(t[len(shared) :] for t in texts[1:])])
        out.update(dict.fromkeys((c.chunk_id for c in pieces), whole))
    return out


def rerank_candidate(key: str, chunk: Chunk) -> rerank.Candidate:
    article = chunk.metadata.get("article")
    law = chunk.metadata.get("law")
    return rerank.Candidate(key, _lexical_text(chunk), str(law) if law else None, str(article) if article else None)


def _payload(tenant_id: str, chunk: Chunk) -> dict:
    return {
        "tenant_id": tenant_id,
        "document_id": chunk.document_id,
        "chunk_id": chunk.chunk_id,
        "position": chunk.position,
        "label": chunk.label,
        "title": chunk.title,
        "text": chunk.text,
        "metadata": chunk.metadata,
    }


def _chunk(payload: dict) -> Chunk:
    return Chunk(
        chunk_id=payload["chunk_id"],
        document_id=payload["document_id"],
        position=int(payload["position"]),
        label=payload["label"],
        title=payload["title"],
        text=payload["text"],
        metadata=dict(payload.get("metadata") or {}),
    )


_lock = threading.Lock()
_index: Index | None = None


def build_index(settings: Settings) -> Index:
    """A new Index for these settings (QDRANT_URL -> server adapter, else Qdrant Edge under QDRANT_PATH)."""
    from harvey.search.embeddings import get_embedder
    from harvey.search.vectorstore import open_store

    embedder = get_embedder(settings.embedding_model, settings.llm_api_base)
    collection = collection_name(settings.qdrant_collection, storage_version(embedder.name))
    store = open_store(
        collection,
        embedder.dim,
        url=settings.qdrant_url,
        api_key=settings.qdrant_api_key,
        path=settings.qdrant_path,
    )
    return Index(store, embedder)


def open_index(settings: Settings | None = None) -> Index:
    """The process-wide index, created on first use."""
    global _index
    with _lock:
        if _index is None:
            from harvey.config import get_settings

            _index = build_index(settings or get_settings())
        return _index
