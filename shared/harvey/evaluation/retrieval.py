"""`harvey eval retrieval`: the product's search path against plain BM25, on one dataset, in one run.

Reads the retrieval format of ../shared/README.md (corpus.csv, queries.csv, qrels.csv), indexes the
corpus into a throw-away collection (Qdrant Edge in a temp dir, or a fresh collection on QDRANT_URL),
ranks documents by their best chunk from `Index.search`, and reports nDCG@k (gain 2^rel - 1),
recall@k and MRR@k overall and per query group, next to bm25s with a Snowball Portuguese stemmer.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import tempfile
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from harvey.search.retrieval import Index

BASELINE_K1 = 0.9
BASELINE_B = 0.4
BASELINE_DEPTH = 100
# Chunks fetched per query: long articles span several chunks, and k distinct documents are needed.
CHUNK_DEPTH_FACTOR = 5


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    group: str | None = None


@dataclass
class Dataset:
    corpus: dict[str, str]
    queries: list[Query]
    qrels: dict[str, dict[str, float]]


@dataclass
class Metrics:
    ndcg: float
    recall: float
    mrr: float
    n_queries: int


@dataclass
class Report:
    overall: Metrics
    groups: dict[str, Metrics] = field(default_factory=dict)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def load_dataset(corpus: Path, queries: Path, qrels: Path) -> Dataset:
    judgments: dict[str, dict[str, float]] = defaultdict(dict)
    for row in _rows(qrels):
        judgments[row["query_id"]][row["doc_id"]] = float(row["score"])
    return Dataset(
        corpus={row["id"]: row["text"] for row in _rows(corpus)},
        queries=[Query(row["id"], row["text"], row.get("group") or None) for row in _rows(queries)],
        qrels=dict(judgments),
    )


def ndcg_at_k(ranked: list[str], relevance: dict[str, float], k: int) -> float:
    dcg = sum((2 ** relevance.get(doc, 0.0) - 1) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(relevance.values(), reverse=True)[:k]
    idcg = sum((2**gain - 1) / math.log2(i + 2) for i, gain in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: list[str], relevance: dict[str, float], k: int) -> float:
    relevant = {doc for doc, gain in relevance.items() if gain > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr_at_k(ranked: list[str], relevance: dict[str, float], k: int) -> float:
    for i, doc in enumerate(ranked[:k]):
        if relevance.get(doc, 0.0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def score_runs(dataset: Dataset, runs: dict[str, list[str]], k: int) -> Report:
    """Means in percent over queries that have at least one relevant document."""
    per_group: dict[str | None, list[tuple[float, float, float]]] = defaultdict(list)
    for query in dataset.queries:
        relevance = dataset.qrels.get(query.id, {})
        if not any(gain > 0 for gain in relevance.values()):
            continue
        ranked = runs.get(query.id, [])
        values = (
            ndcg_at_k(ranked, relevance, k),
            recall_at_k(ranked, relevance, k),
            mrr_at_k(ranked, relevance, k),
        )
        per_group[None].append(values)
        if query.group:
            per_group[query.group].append(values)

    def mean(values: list[tuple[float, float, float]]) -> Metrics:
        n = len(values)

        def percent(i: int) -> float:
            return round(100 * sum(v[i] for v in values) / n, 2) if n else 0.0

        return Metrics(ndcg=percent(0), recall=percent(1), mrr=percent(2), n_queries=n)

    overall = mean(per_group.pop(None, []))
    groups = {str(name): mean(values) for name, values in per_group.items()}
    return Report(overall=overall, groups=dict(sorted(groups.items())))


def _fold(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def bm25_runs(dataset: Dataset) -> dict[str, list[str]]:
    """The reference baseline: bm25s, accents folded, Snowball Portuguese, k1=0.9, b=0.4, top-100."""
    import bm25s  # type: ignore[import-untyped]
    import Stemmer  # type: ignore[import-not-found]

    stemmer = Stemmer.Stemmer("portuguese")
    ids = list(dataset.corpus)
    model = bm25s.BM25(k1=BASELINE_K1, b=BASELINE_B)
    model.index(
        bm25s.tokenize([_fold(dataset.corpus[i]) for i in ids], stopwords="pt", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    runs = {}
    depth = min(BASELINE_DEPTH, len(ids))
    for query in dataset.queries:
        tokens = bm25s.tokenize([_fold(query.text)], stopwords="pt", stemmer=stemmer, show_progress=False)
        docs, scores = model.retrieve(tokens, k=depth, show_progress=False)
        runs[query.id] = [ids[d] for d, s in zip(docs[0], scores[0], strict=True) if s > 0]
    return runs


@contextmanager
def indexed_corpus(dataset: Dataset, progress: bool = True) -> Iterator[tuple[Index, str]]:
    """The corpus chunked and indexed by the product into a throw-away collection: (index, tenant)."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    from harvey.config import get_settings
    from harvey.search.chunking import chunk_document
    from harvey.search.retrieval import build_index

    settings = get_settings()
    tenant = str(uuid.uuid4())
    with tempfile.TemporaryDirectory(prefix="harvey-eval-") as tmp:
        collection = f"harvey_eval_{uuid.uuid4().hex[:8]}"
        index = build_index(settings.model_copy(update={"qdrant_path": Path(tmp), "qdrant_collection": collection}))
        try:
            chunks = [c for doc_id, text in dataset.corpus.items() for c in chunk_document(doc_id, text)]
            with tqdm(total=len(chunks), desc="indexing chunks", file=sys.stderr, disable=not progress) as bar:
                index.add(tenant, chunks, progress=bar.update)
            yield index, tenant
        finally:
            index.drop()


def product_runs(dataset: Dataset, k: int, progress: bool = True) -> dict[str, list[str]]:
    """Index the corpus with the product's chunker and index, then rank documents by their best chunk."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    runs = {}
    with indexed_corpus(dataset, progress) as (index, tenant):
        for query in tqdm(dataset.queries, desc="searching", file=sys.stderr, disable=not progress):
            ranked: list[str] = []
            for hit in index.search(tenant, query.text, k * CHUNK_DEPTH_FACTOR):
                if hit.chunk.document_id not in ranked:
                    ranked.append(hit.chunk.document_id)
            runs[query.id] = ranked
    return runs


def evaluate(dataset: Dataset, k: int = 10, progress: bool = True) -> dict:
    product = score_runs(dataset, product_runs(dataset, k, progress), k)
    baseline = score_runs(dataset, bm25_runs(dataset), k)
    return {
        "k": k,
        "product": asdict(product),
        "bm25": asdict(baseline),
        "ndcg_ratio": round(product.overall.ndcg / baseline.overall.ndcg, 3) if baseline.overall.ndcg else None,
    }


def _table(result: dict) -> str:
    k = result["k"]
    lines = [
        f"| system | group | nDCG@{k} | R@{k} | MRR@{k} | queries |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for system in ("product", "bm25"):
        report = result[system]
        for name, m in [("all", report["overall"]), *report["groups"].items()]:
            cells = f"{m['ndcg']:.1f} | {m['recall']:.1f} | {m['mrr']:.1f} | {m['n_queries']}"
            lines.append(f"| {system} | {name} | {cells} |")
    lines.append(f"\nnDCG@{k} product / BM25 = {result['ndcg_ratio']}")
    return "\n".join(lines)


@click.command("retrieval")
@click.option("--corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--queries", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--qrels", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(corpus: Path, queries: Path, qrels: Path, k: int, as_json: bool) -> None:
    """nDCG@k, recall@k and MRR@k of Harvey's hybrid search and of a BM25 baseline."""
    result = evaluate(load_dataset(corpus, queries, qrels), k)
    click.echo(json.dumps(result, indent=2) if as_json else _table(result))
