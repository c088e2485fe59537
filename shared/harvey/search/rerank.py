"""Learned fusion of the hybrid search's candidate lists, with cheap lexical evidence per candidate.

Reciprocal-rank fusion treats the dense and sparse lists alike for every query. This stage re-scores
the union of their top candidates with a linear model over rank features (fused, dense, sparse,
sparse with feedback), query-term coverage (plain, weighted by IDF within the candidate pool, word
pairs, IDF over federal legislation, BM25 within the pool) and statute evidence (the question names
the candidate's law, or its article). Coefficients live in `models/rerank_linear.json`, fitted on the
dev sets by `python -m harvey.evaluation.fit_rerank`. Pure Python: analysing the ~60-90 pooled chunks
costs 20-40 ms per query on one core.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from harvey.portuguese import fold
from harvey.search import analyzer

MODEL_PATH = Path(__file__).parents[1] / "models" / "rerank_linear.json"
IDF_PATH = Path(__file__).parents[1] / "models" / "rerank_idf_pt.json"
FLAT_K = 20  # a flatter reciprocal rank for lists whose lower ranks still carry signal
BM25_K1, BM25_B = 1.2, 0.75
RANK_K = 5  # reciprocal-rank features: (K + 1) / (K + rank), 1.0 at the top, 0 when absent
LONG_QUERY_TERMS = 40

FEATURES = (
    "fused_rr",
    "dense_rr",
    "sparse_rr",
    "feedback_rr",
    "dense_rr_long",
    "coverage",
    "idf_coverage",
    "pair_coverage",
    "law_named",
    "other_law_named",
    "article_named",
    "global_idf_coverage",
    "bm25",
    "coverage_short",
    "dense_rr_flat",
    "feedback_rr_flat",
    "all_terms",
)

# Statutes named in a question (folded text) -> keys compared with the candidate's law (folded, alnum only).
_LAW_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), key)
    for pattern, key in (
        (r"estatuto da (advocacia|oab|ordem)|\beaoab\b|8\.?906", "eaoab"),
        (r"codigo de etica", "ced"),
        (r"regulamento geral", "rg"),
        (r"constituicao|\bcf\b|\bcrfb\b|carta magna", "cf88"),
        (r"\badct\b|disposicoes constitucionais transitorias", "adct"),
        (r"codigo civil|\bcc\b", "cc"),
        (r"codigo de processo civil|\bcpc\b", "cpc"),
        (r"codigo penal|\bcp\b", "cp"),
        (r"codigo de processo penal|\bcpp\b", "cpp"),
        (r"consolidacao das leis do trabalho|\bclt\b", "clt"),
        (r"defesa do consumidor|\bcdc\b", "cdc"),
        (r"codigo tributario|\bctn\b", "ctn"),
    )
)
_LAW_NUMBER = re.compile(r"\blei(?: complementar)?\s*(?:n[\Wo]{0,4})?(\d{1,2}\.?\d{3})\b")
_ARTICLE_NUMBER = re.compile(r"\bart(?:igo)?s?\.?\s*(\d+)")


@dataclass(frozen=True)
class Candidate:
    """One chunk in the pool: its id, lexical text (title + article), law and article metadata."""

    key: str
    text: str
    law: str | None = None
    article: str | None = None


@lru_cache(maxsize=1)
def weights() -> tuple[float, ...]:
    data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    if tuple(data["features"]) != FEATURES:
        raise ValueError(f"{MODEL_PATH.name} was fitted for other features: {data['features']}")
    return tuple(float(w) for w in data["weights"])


@lru_cache(maxsize=1)
def _global_idf() -> tuple[dict[str, float], float]:
    """IDF of analyzed terms over Brazilian federal legislation (~6.5k articles); rare/unseen terms get `default`."""
    data = json.loads(IDF_PATH.read_text(encoding="utf-8"))
    return data["idf"], float(data["default"])


def _law_key(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", fold(value))


def named_laws(query: str) -> set[str]:
    folded = fold(query)
    keys = {key for pattern, key in _LAW_PATTERNS if pattern.search(folded)}
    keys.update(number.replace(".", "") for number in _LAW_NUMBER.findall(folded))
    return keys


def _law_matches(law_key: str, named: set[str]) -> bool:
    """Exact keys ("cp" is not "cpc"), "ced"/"rg" also as "cedoab"/"rgoab", law numbers inside ids ("l9868")."""
    return any(law_key in (key, f"{key}oab") or (key.isdigit() and key in law_key) for key in named)


def _pairs(terms: Sequence[str]) -> set[tuple[str, str]]:
    return set(zip(terms, terms[1:], strict=False))


def feature_rows(query: str, pool: Sequence[Candidate], ranks: Sequence[dict[str, int]]) -> list[list[float]]:
    """One row of FEATURES per candidate; `ranks` are 1-based positions in (fused, dense, sparse, feedback)."""
    q_terms = analyzer.tokens(query)
    q_set = set(q_terms)
    q_pairs = _pairs(q_terms)
    long_query = min(1.0, len(q_terms) / LONG_QUERY_TERMS)
    named = named_laws(query)
    cited = set(_ARTICLE_NUMBER.findall(fold(query)))
    cand_terms = [analyzer.tokens(c.text) for c in pool]
    df: dict[str, int] = dict.fromkeys(q_set, 0)
    for terms in cand_terms:
        for term in q_set.intersection(terms):
            df[term] += 1
    idf = {t: math.log(1.0 + len(pool) / (1 + n)) for t, n in df.items()}
    idf_total = sum(idf.values()) or 1.0
    table, default = _global_idf()
    gidf = {t: table.get(t, default) for t in q_set}
    gidf_total = sum(gidf.values()) or 1.0
    q_counts = Counter(q_terms)
    avg_len = sum(len(t) for t in cand_terms) / len(cand_terms) if cand_terms else 1.0
    bm25 = []
    for terms in cand_terms:
        tf = Counter(t for t in terms if t in q_set)
        norm = BM25_K1 * (1 - BM25_B + BM25_B * len(terms) / max(avg_len, 1.0))
        bm25.append(sum(q_counts[t] * gidf[t] * n * (BM25_K1 + 1) / (n + norm) for t, n in tf.items()))
    top_bm25 = max(bm25, default=0.0) or 1.0
    rows = []
    for cand, terms, lexical in zip(pool, cand_terms, bm25, strict=True):
        rr = [(RANK_K + 1) / (RANK_K + r[cand.key]) if cand.key in r else 0.0 for r in ranks]
        flat = [(FLAT_K + 1) / (FLAT_K + r[cand.key]) if cand.key in r else 0.0 for r in ranks]
        present = q_set.intersection(terms)
        coverage = len(present) / len(q_set) if q_set else 0.0
        law = _law_key(cand.law) if cand.law else ""
        law_named = bool(law) and _law_matches(law, named)
        article = re.sub(r"\D", "", cand.article or "")
        rows.append(
            [
                *rr,
                rr[1] * long_query,
                coverage,
                sum(idf[t] for t in present) / idf_total,
                len(q_pairs.intersection(_pairs(terms))) / len(q_pairs) if q_pairs else 0.0,
                float(law_named),
                float(bool(law) and bool(named) and not law_named),
                float(bool(article) and article in cited and (law_named or not named)),
                sum(gidf[t] for t in present) / gidf_total,
                lexical / top_bm25,
                coverage * (1.0 - long_query),
                flat[1],
                flat[3],
                float(coverage == 1.0),
            ]
        )
    return rows


def rerank(
    query: str, pool: Sequence[Candidate], ranks: Sequence[dict[str, int]], coefficients: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Candidate keys with their scores, best first (ties keep the fused order)."""
    w = coefficients if coefficients is not None else weights()
    rows = feature_rows(query, pool, ranks)
    scored = [(c.key, sum(a * b for a, b in zip(w, row, strict=True))) for c, row in zip(pool, rows, strict=True)]
    return sorted(scored, key=lambda item: -item[1])
