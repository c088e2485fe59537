"""Fit the reranker's linear coefficients (`harvey/models/rerank_linear.json`) on retrieval dev sets.

    python -m harvey.evaluation.fit_rerank /work/shared/eval/retrieval-juristcu /work/shared/eval/retrieval-oab \
        --idf-corpus /work/shared/corpus/br-legal/articles.jsonl

Each directory holds corpus.csv, queries.csv and qrels.csv. The corpus is indexed by the product, the
reranker's candidate pool and features are computed per query, and the weights are fitted by coordinate
ascent on mean nDCG@10 of the document ranking (the fused rank's weight is fixed at 1: it sets the scale,
and all-zero other weights reproduce the first stage). Reported alongside: a 5-fold cross-validation
grouped by query over the pooled sets, and train-on-one / test-on-the-other transfer.
`--idf-corpus` first rebuilds the reranker's IDF table (`models/rerank_idf_pt.json`) from a JSONL of
legislation articles (`{"text": ...}` per line): unsupervised, no judgments involved.

Qdrant's index build is not bit-for-bit deterministic (near-duplicate articles tie), so refits move the
first-stage nDCG by up to ~0.5 and the weights somewhat; the cross-validated figures are the honest ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from harvey.evaluation.retrieval import Dataset, indexed_corpus, load_dataset
from harvey.search import rerank

K = 10
_STEPS = (-2.0, -1.0, -0.5, -0.25, -0.1, 0.1, 0.25, 0.5, 1.0, 2.0)
_DISCOUNT = 1.0 / np.log2(np.arange(2, K + 2))


@dataclass
class QueryData:
    """Feature rows of one query's pool, each row's document index and gain, and the ideal DCG@k."""

    features: np.ndarray
    documents: np.ndarray
    gains: np.ndarray
    ideal: float


def collect(dataset: Dataset, depth: int, progress: bool = True) -> list[QueryData]:
    from harvey.search.retrieval import rerank_candidate

    out = []
    with indexed_corpus(dataset, progress) as (index, tenant):
        for query in dataset.queries:
            relevance = dataset.qrels.get(query.id, {})
            if not any(g > 0 for g in relevance.values()):
                continue
            pool, ranks = index.candidates(tenant, query.text, depth)
            cands = [rerank_candidate(key, chunk) for key, chunk in pool.items()]
            docs = [pool[c.key].document_id for c in cands]
            doc_index = {d: i for i, d in enumerate(dict.fromkeys(docs))}
            ideal = sorted((2**g - 1 for g in relevance.values()), reverse=True)[:K]
            out.append(
                QueryData(
                    features=np.array(rerank.feature_rows(query.text, cands, ranks), dtype=float).reshape(
                        len(cands), len(rerank.FEATURES)
                    ),
                    documents=np.array([doc_index[d] for d in docs], dtype=int),
                    gains=np.array([2 ** relevance.get(d, 0.0) - 1 for d in docs]),
                    ideal=sum(g / math.log2(i + 2) for i, g in enumerate(ideal)),
                )
            )
    return out


def ndcg(query: QueryData, weights: np.ndarray) -> float:
    """nDCG@K of the document ranking induced by chunk scores (each document at its best chunk)."""
    order = np.argsort(-(query.features @ weights), kind="stable")
    seen: set[int] = set()
    dcg = 0.0
    for i in order:
        doc = int(query.documents[i])
        if doc in seen:
            continue
        dcg += query.gains[i] * _DISCOUNT[len(seen)]
        seen.add(doc)
        if len(seen) == K:
            break
    return dcg / query.ideal if query.ideal > 0 else 0.0


def mean_ndcg(queries: list[QueryData], weights: np.ndarray) -> float:
    return float(np.mean([ndcg(q, weights) for q in queries])) if queries else 0.0


def fit(queries: list[QueryData], rounds: int = 4) -> np.ndarray:
    """Coordinate ascent from the first-stage ranking (weights e_0), relative steps per coordinate."""
    weights = np.zeros(len(rerank.FEATURES))
    weights[0] = 1.0
    best = mean_ndcg(queries, weights)
    for _ in range(rounds):
        improved = False
        for j in range(1, len(weights)):
            for step in _STEPS:
                trial = weights.copy()
                trial[j] += step * max(abs(weights[j]), 0.1)
                value = mean_ndcg(queries, trial)
                if value > best + 1e-6:
                    best, weights, improved = value, trial, True
        if not improved:
            break
    return weights


def cross_validate(sets: dict[str, list[QueryData]], folds: int, seed: int = 0) -> dict[str, float]:
    """Folds grouped by query (each query's pool wholly in train or test), stratified per set."""
    rng = np.random.default_rng(seed)
    assignment = {name: rng.permutation(len(qs)) % folds for name, qs in sets.items()}
    scores: dict[str, list[float]] = {name: [] for name in sets}
    for fold in range(folds):
        train = [q for name, qs in sets.items() for q, f in zip(qs, assignment[name], strict=True) if f != fold]
        weights = fit(train)
        for name, qs in sets.items():
            scores[name].extend(ndcg(q, weights) for q, f in zip(qs, assignment[name], strict=True) if f == fold)
    return {name: round(100 * float(np.mean(v)), 2) for name, v in scores.items()}


def build_idf(articles: Path, out: Path = rerank.IDF_PATH) -> int:
    """IDF (log((N + 1) / (df + 0.5))) of analyzed, non-numeric terms seen in at least two articles."""
    from harvey.search import analyzer

    df: dict[str, int] = {}
    n = 0
    with articles.open(encoding="utf-8") as handle:
        for line in handle:
            n += 1
            for term in set(analyzer.tokens(json.loads(line)["text"])):
                df[term] = df.get(term, 0) + 1
    idf = {t: round(math.log((n + 1) / (c + 0.5)), 2) for t, c in sorted(df.items()) if c >= 2 and not t[0].isdigit()}
    data = {"documents": n, "default": round(math.log((n + 1) / 1.5), 2), "idf": idf}
    out.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    rerank._global_idf.cache_clear()
    return len(idf)


@click.command()
@click.argument("datasets", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=rerank.MODEL_PATH, show_default=True)
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True)
@click.option("--idf-corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
def main(datasets: tuple[Path, ...], out: Path, folds: int, idf_corpus: Path | None) -> None:
    """Fit the reranker on DATASETS (retrieval dev-set directories) and write its coefficients."""
    from harvey.search.retrieval import RERANK_DEPTH

    if idf_corpus:
        click.echo(f"IDF table: {build_idf(idf_corpus)} terms", err=True)

    sets = {
        path.name: collect(load_dataset(path / "corpus.csv", path / "queries.csv", path / "qrels.csv"), RERANK_DEPTH)
        for path in datasets
    }
    pooled = [q for qs in sets.values() for q in qs]
    first_stage = np.eye(len(rerank.FEATURES))[0]
    weights = fit(pooled)
    report = {
        "first_stage": {n: round(100 * mean_ndcg(qs, first_stage), 2) for n, qs in sets.items()},
        "in_sample": {n: round(100 * mean_ndcg(qs, weights), 2) for n, qs in sets.items()},
        f"cv{folds}": cross_validate(sets, folds),
    }
    if len(sets) == 2:
        (a, qa), (b, qb) = sets.items()
        report["transfer"] = {
            f"{a}->{b}": round(100 * mean_ndcg(qb, fit(qa)), 2),
            f"{b}->{a}": round(100 * mean_ndcg(qa, fit(qb)), 2),
        }
    model = {
        "features": list(rerank.FEATURES),
        "weights": [round(float(w), 4) for w in weights],
        "fitted_on": sorted(sets),
        "ndcg_at_10": report,
    }
    out.write_text(json.dumps(model, indent=2) + "\n", encoding="utf-8")
    click.echo(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
