"""Retrieval benchmark on the embedded engine (Qdrant Edge): ingest throughput and search latency.

Two layers are timed because they scale differently: the full path (embedding + storage), bounded
by the CPU embedder, and the store alone (precomputed vectors), bounded by Qdrant Edge. Each figure
is the median over --runs fresh runs; a markdown table fragment goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "br-legal" / "articles.jsonl"
FALLBACK = ROOT / "tests" / "fixtures" / "retrieval" / "articles.jsonl"
QUERIES = [
    "responsabilidade civil por ato ilícito e dever de indenizar",
    "culpa exclusiva do consumidor ou de terceiro",
    "tutela de urgência probabilidade do direito e perigo de dano",
    "prazo para reclamar de vício do produto",
    "art. 5º da CF/88 direito à vida e à liberdade",
    "homicídio qualificado por motivo torpe",
    "direitos do advogado e inviolabilidade do escritório",
    "pode o proprietário reaver a coisa de quem a possua injustamente",
]


def load_chunks(limit: int):
    from harvey.search.chunking import chunk_document

    source = CORPUS if CORPUS.exists() else FALLBACK
    chunks = []
    with source.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            chunks.extend(chunk_document(row["id"], row["text"], metadata={"law": row["law"]}))
            if len(chunks) >= limit:
                break
    return chunks[:limit]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_full_path(chunks, runs: int) -> dict[str, float]:
    """Index.add and Index.search with the real embedder, one fresh index per run."""
    from harvey.config import get_settings
    from harvey.search.retrieval import build_index

    rates, p50s, p95s = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            settings = get_settings().model_copy(update={"qdrant_path": Path(tmp), "qdrant_collection": "bench"})
            index = build_index(settings)
            tenant = str(uuid.uuid4())
            started = time.perf_counter()
            index.add(tenant, chunks)
            rates.append(len(chunks) / (time.perf_counter() - started))
            latencies = []
            for query in QUERIES * 2:
                started = time.perf_counter()
                index.search(tenant, query, 6)
                latencies.append((time.perf_counter() - started) * 1000)
            p50s.append(percentile(latencies, 0.5))
            p95s.append(percentile(latencies, 0.95))
            index.drop()
    return {"rate": statistics.median(rates), "p50": statistics.median(p50s), "p95": statistics.median(p95s)}


def bench_store(points: int, runs: int, dim: int = 384) -> dict[str, float]:
    """Qdrant Edge alone: upsert throughput and hybrid (dense + sparse + RRF) query latency."""
    from harvey.search.analyzer import Bm25Weights
    from harvey.search.vectorstore import FusionParams, StoredPoint, open_store

    rng = random.Random(7)  # noqa: S311 - reproducible benchmark data, not secrets
    weights = Bm25Weights()
    texts = [c.text for c in load_chunks(2000)]

    def vector() -> list[float]:
        raw = [rng.gauss(0, 1) for _ in range(dim)]
        norm = sum(x * x for x in raw) ** 0.5
        return [x / norm for x in raw]

    tenants = [str(uuid.uuid4()) for _ in range(4)]
    data = [
        StoredPoint(
            str(uuid.uuid4()),
            vector(),
            weights.document(texts[i % len(texts)]),
            {"tenant_id": tenants[i % 4], "document_id": f"d{i}", "text": texts[i % len(texts)]},
        )
        for i in range(points)
    ]
    probes = [(vector(), weights.query(q)) for q in QUERIES]
    rates, p50s, p95s = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store("bench", dim, path=Path(tmp))
            started = time.perf_counter()
            for start in range(0, len(data), 256):
                store.upsert(data[start : start + 256])
            rates.append(points / (time.perf_counter() - started))
            latencies = []
            for dense, sparse in probes * 5:
                started = time.perf_counter()
                store.hybrid_search(tenants[0], dense, sparse, 6, FusionParams(rrf_k=10))
                latencies.append((time.perf_counter() - started) * 1000)
            p50s.append(percentile(latencies, 0.5))
            p95s.append(percentile(latencies, 0.95))
            store.drop()
    return {"rate": statistics.median(rates), "p50": statistics.median(p50s), "p95": statistics.median(p95s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=48, help="chunks embedded and indexed per full-path run")
    parser.add_argument("--points", type=int, default=20000, help="points upserted per store-only run")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    print(f"retrieval bench: {args.runs} runs each ...", file=sys.stderr)
    full = bench_full_path(load_chunks(args.chunks), args.runs)
    store = bench_store(args.points, args.runs)
    print("| retrieval (Qdrant Edge, embedded) | ingest | search p50 | search p95 |")
    print("|---|---:|---:|---:|")
    print(
        f"| full path: e5 embedding + hybrid search with feedback ({args.chunks} chunks) "
        f"| {full['rate']:.1f} chunks/s | {full['p50']:.1f} ms | {full['p95']:.1f} ms |"
    )
    print(
        f"| store only: upsert + dense/sparse RRF query ({args.points} points, 4 tenants) "
        f"| {store['rate']:.0f} points/s | {store['p50']:.2f} ms | {store['p95']:.2f} ms |"
    )


if __name__ == "__main__":
    main()
