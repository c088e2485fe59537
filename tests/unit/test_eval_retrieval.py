"""`harvey eval retrieval`: metrics against hand-computed values, and the command on a tiny dataset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from harvey.evaluation.retrieval import (
    Dataset,
    Query,
    command,
    load_dataset,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
    score_runs,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "retrieval"
RELEVANCE = {"d2": 3.0, "d1": 1.0, "d7": 2.0, "d8": 0.0}
RANKED = ["d9", "d2", "d1", "d8"]


def test_ndcg_uses_exponential_gain_and_ideal_order():
    dcg = 7 / math.log2(3) + 1 / math.log2(4)  # d2 at rank 2 (gain 2^3-1), d1 at rank 3 (gain 1)
    idcg = 7 / math.log2(2) + 3 / math.log2(3) + 1 / math.log2(4)  # 3, 2, 1 in order
    assert ndcg_at_k(RANKED, RELEVANCE, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(RANKED, RELEVANCE, 10) == pytest.approx(0.52344, abs=1e-5)
    assert ndcg_at_k(RANKED, RELEVANCE, 2) == pytest.approx((7 / math.log2(3)) / (7 + 3 / math.log2(3)))
    assert ndcg_at_k(["d2", "d7", "d1"], RELEVANCE, 10) == pytest.approx(1.0)
    assert ndcg_at_k(RANKED, {"d8": 0.0}, 10) == 0.0


def test_recall_and_mrr_count_only_positive_judgments():
    assert recall_at_k(RANKED, RELEVANCE, 10) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, RELEVANCE, 2) == pytest.approx(1 / 3)
    assert mrr_at_k(RANKED, RELEVANCE, 10) == pytest.approx(1 / 2)
    assert mrr_at_k(RANKED, RELEVANCE, 1) == 0.0
    assert mrr_at_k(["d8", "d9"], RELEVANCE, 10) == 0.0


def test_score_runs_averages_in_percent_per_group_and_skips_unjudged_queries():
    dataset = Dataset(
        corpus={},
        queries=[Query("q1", "", "log"), Query("q2", "", "llm"), Query("q3", "", "llm")],
        qrels={"q1": RELEVANCE, "q2": {"d1": 1.0}, "q3": {"d5": 0.0}},
    )
    report = score_runs(dataset, {"q1": RANKED, "q2": ["d1"], "q3": ["d5"]}, k=10)
    assert report.overall.n_queries == 2
    assert report.overall.ndcg == pytest.approx(100 * (0.52344 + 1) / 2, abs=1e-2)
    assert report.overall.mrr == pytest.approx(75.0)
    assert report.groups["log"].recall == pytest.approx(66.67, abs=1e-2)
    assert report.groups["llm"].n_queries == 1 and report.groups["llm"].ndcg == 100.0


def test_load_dataset_reads_the_shared_format():
    dataset = load_dataset(FIXTURES / "corpus.csv", FIXTURES / "queries.csv", FIXTURES / "qrels.csv")
    assert len(dataset.corpus) == 6 and dataset.corpus["d3"].startswith("Art. 121.")
    assert [q.group for q in dataset.queries] == ["paraphrase", "keyword", "keyword"]
    assert dataset.qrels["q1"] == {"d2": 3.0, "d1": 1.0}


def test_command_reports_product_and_bm25_as_json():
    args = [f"--{name}={FIXTURES / f'{name}.csv'}" for name in ("corpus", "queries", "qrels")]
    result = CliRunner().invoke(command, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for system in ("product", "bm25"):
        assert report[system]["overall"]["n_queries"] == 3
        assert set(report[system]["groups"]) == {"keyword", "paraphrase"}
    # both systems find every keyword query's single relevant article first
    assert report["bm25"]["groups"]["keyword"]["mrr"] == 100.0
    assert report["product"]["groups"]["keyword"]["mrr"] == 100.0
    assert report["product"]["overall"]["recall"] == 100.0
    assert report["ndcg_ratio"] == pytest.approx(
        report["product"]["overall"]["ndcg"] / report["bm25"]["overall"]["ndcg"], abs=1e-3
    )


def test_command_prints_a_table_by_default():
    args = [f"--{name}={FIXTURES / f'{name}.csv'}" for name in ("corpus", "queries", "qrels")]
    result = CliRunner().invoke(command, [*args, "--k", "3"])
    assert result.exit_code == 0, result.output
    assert "| system | group | nDCG@3 | R@3 | MRR@3 | queries |" in result.stdout
    assert "| bm25 | keyword |" in result.stdout


def test_fit_rerank_learns_a_feature_that_orders_documents():
    import numpy as np
    from harvey.evaluation.fit_rerank import QueryData, fit, ndcg
    from harvey.search import rerank

    n = len(rerank.FEATURES)
    # three chunks of two documents; the fused rank puts the irrelevant document first, coverage knows better
    features = np.zeros((3, n))
    features[:, 0] = [1.0, 0.9, 0.6]
    features[:, rerank.FEATURES.index("coverage")] = [0.0, 1.0, 1.0]
    query = QueryData(features=features, documents=np.array([0, 1, 1]), gains=np.array([0.0, 7.0, 7.0]), ideal=7.0)
    first_stage = np.eye(n)[0]
    assert ndcg(query, first_stage) == pytest.approx(1 / np.log2(3))
    assert ndcg(query, fit([query])) == pytest.approx(1.0)
