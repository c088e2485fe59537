"""One contract for all adapters: Qdrant Edge, qdrant-client local mode, a server if QDRANT_URL is set."""

from __future__ import annotations

import os
import uuid

import pytest
from harvey.search.analyzer import SparseVector
from harvey.search.vectorstore import FusionParams, StoredPoint, StoreUnavailable, open_store

DIM = 4
FUSION = FusionParams(rrf_k=60, candidates=20)
SERVER_URL = os.environ.get("HARVEY_TEST_QDRANT_URL") or os.environ.get("QDRANT_URL")


@pytest.fixture(params=["edge", "client-local", "server"])
def store(request, tmp_path):
    collection = f"contract_{uuid.uuid4().hex[:8]}"
    if request.param == "edge":
        made = open_store(collection, DIM, path=tmp_path)
    elif request.param == "client-local":
        from harvey.search.vectorstore.server import ServerStore
        from qdrant_client import QdrantClient

        made = ServerStore(collection, DIM, client=QdrantClient(location=":memory:"))
    else:
        if not SERVER_URL:
            pytest.skip("no Qdrant server (set QDRANT_URL)")
        made = open_store(collection, DIM, url=SERVER_URL)
    yield made
    made.drop()


def point(tenant: str, doc: str, n: int, dense: list[float], terms: dict[int, float]) -> StoredPoint:
    return StoredPoint(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{doc}/{n}")),
        dense=dense,
        sparse=SparseVector(indices=sorted(terms), values=[terms[i] for i in sorted(terms)]),
        payload={"tenant_id": tenant, "document_id": doc, "n": n},
    )


A, B = str(uuid.uuid4()), str(uuid.uuid4())
POINTS = [
    point(A, "a1", 0, [1, 0, 0, 0], {10: 1.0, 11: 1.0}),
    point(A, "a1", 1, [0.9, 0.1, 0, 0], {12: 1.0}),
    point(A, "a2", 0, [0, 1, 0, 0], {13: 1.0, 10: 0.5}),
    point(A, "a3", 0, [0, 0, 1, 0], {14: 2.0}),
    point(B, "a1", 0, [1, 0, 0, 0], {10: 1.0, 11: 1.0}),  # same document id, other tenant
]


def test_upsert_is_idempotent_and_counts_per_tenant(store):
    store.upsert(POINTS)
    store.upsert(POINTS)
    assert store.count(A) == 4
    assert store.count(B) == 1
    assert store.count(A, "a1") == 2
    assert store.count(str(uuid.uuid4())) == 0


def test_delete_document_removes_only_that_tenants_chunks(store):
    store.upsert(POINTS)
    assert store.delete_document(A, "a1") == 2
    assert store.count(A) == 2 and store.count(A, "a1") == 0
    assert store.count(B, "a1") == 1
    assert store.delete_document(A, "a1") == 0


def test_search_never_crosses_tenants(store):
    store.upsert(POINTS)
    hits_b = store.hybrid_search(B, [1, 0, 0, 0], SparseVector([10, 11], [1.0, 1.0]), 10, FUSION)
    assert [h.payload["tenant_id"] for h in hits_b] == [B]
    hits_a = store.hybrid_search(A, [1, 0, 0, 0], SparseVector([10, 11], [1.0, 1.0]), 10, FUSION)
    assert {h.payload["tenant_id"] for h in hits_a} == {A}
    assert store.hybrid_search(str(uuid.uuid4()), [1, 0, 0, 0], SparseVector([10], [1.0]), 10, FUSION) == []


def test_hybrid_fuses_dense_and_sparse_by_rank(store):
    store.upsert(POINTS)
    # Qdrant's RRF: sum of weight / (k + rank), ranks counted from 0.
    top = store.hybrid_search(A, [1, 0, 0, 0], SparseVector([10, 11], [1.0, 1.0]), 3, FUSION)[0]
    assert (top.payload["document_id"], top.payload["n"]) == ("a1", 0)  # first in both lists
    assert top.score == pytest.approx(2 / 60, rel=1e-4)
    # dense points at a3 and the terms at a2: each list brings its own best point into the top 2
    hits = store.hybrid_search(A, [0, 0, 1, 0], SparseVector([13], [1.0]), 2, FUSION)
    assert [(h.payload["document_id"], h.payload["n"]) for h in hits] == [("a2", 0), ("a3", 0)]


def test_weights_decide_between_the_lists(store):
    store.upsert(POINTS)
    query = ([0, 0, 1, 0], SparseVector([13], [1.0]))
    lexical = store.hybrid_search(A, *query, 1, FusionParams(rrf_k=60, dense_weight=1, sparse_weight=3, candidates=1))
    semantic = store.hybrid_search(A, *query, 1, FusionParams(rrf_k=60, dense_weight=3, sparse_weight=1, candidates=1))
    assert lexical[0].payload["document_id"] == "a2"
    assert semantic[0].payload["document_id"] == "a3"


def test_empty_sparse_query_falls_back_to_dense(store):
    store.upsert(POINTS)
    hits = store.hybrid_search(A, [0, 1, 0, 0], SparseVector([], []), 1, FUSION)
    assert hits[0].payload["document_id"] == "a2"


def test_ping_answers_without_error_and_leaves_the_data_alone(store):
    store.upsert(POINTS)
    before = store.count(A)
    assert store.ping() is None
    assert store.count(A) == before > 0


def test_edge_data_survives_reopen(tmp_path):
    first = open_store("persist", DIM, path=tmp_path)
    first.upsert(POINTS)
    first.close()
    again = open_store("persist", DIM, path=tmp_path)
    assert again.count(A) == 4
    again.close()


def test_unreachable_server_is_store_unavailable():
    with pytest.raises(StoreUnavailable):
        open_store("nowhere", DIM, url="http://127.0.0.1:1")
