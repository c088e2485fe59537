"""Entailment evidence between one claim sentence and its cited passages, as a fixed feature vector.

Lexical overlap alone rewards distractors that reuse the statute's words with one fact changed, so
next to coverage (how much of the claim the best passage window accounts for, and in which order)
the vector carries detectors for what a changed fact looks like: a number, an article, a deadline,
a negation, a restrictive quantifier or a modal/antonym swap that the passage does not back.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from harvey.faithfulness.text import (
    NEGATIONS,
    STOPWORDS,
    detect_language,
    numbers,
    split_sentences,
    stem_all,
    tokens,
)
from harvey.portuguese import fold

# Graded evidence, combined by the fitted logistic model. `specificity` (mean IDF of the claim's
# content stems) calibrates coverage across claims: covering a generic claim ("o advogado deve...")
# is cheap in any statute, covering a specific one is evidence. It has no IDF table outside
# Portuguese and is then left at the training mean (None), i.e. neutral.
# `lcs` is the order-preserving share of the claim's content stems in the best window (a reshuffled
# rule shares words, not sequence); `context_size` the breadth of the cited text (a long article
# covers any claim's words by chance, so it gets a negative weight).
FEATURES = ("coverage", "specificity", "log_length", "lcs", "context_size")
# Changed-fact detectors that cut the support probability by a fixed factor when they fire: too rare
# in the development data to be weighted by a fit, and decisive when they do. Their out-of-fold effect
# on faithfulness-oab is measured by `evaluation.fit_faithfulness` and recorded in
# models/faith_lr.json ("veto_effects").
VETOES = {
    "number_missing": 0.15,
    "article_missing": 0.15,
    "negation_mismatch": 0.15,  # gated by its own NEGATION_MIN_COVERAGE
}
# A swapped modal, an added restrictor or a legal antonym cuts only a claim that otherwise restates
# the source: at least RESTATEMENT_COVERAGE of its weighted stems, leaving out those cue words, are
# in the best window (`restated_coverage`). There it is a changed rule; on looser paraphrase these
# fired on correct faithfulness-oab options as often as on distractors.
RESTATEMENT_VETOES = {
    "modal_mismatch": 0.15,
    "restrictor_missing": 0.15,
    "antonym_conflict": 0.2,
}
RESTATEMENT_COVERAGE = 0.9
# An added clause (NOVEL_RUN content words the sources lack) is only reported: as a veto it fired on
# one supported OAB option in four and lowered the exam-grouped out-of-fold AUC (see evaluation.fit_faithfulness).
FLAG_ONLY = ("novel_run",)
# Reported with each sentence for the reviewer, whether or not they move the score.
FLAGS = (*VETOES, *RESTATEMENT_VETOES, *FLAG_ONLY)
NOVEL_RUN = 3  # consecutive content words absent from every passage: an added clause
# Polarity is compared only with a passage unit that restates the claim; below this weighted
# coverage of the claim by the unit a "não" on either side says nothing.
NEGATION_MIN_COVERAGE = 0.7

# Words that narrow or widen a rule: a claim adding one the passage lacks states a different rule.
_RESTRICTORS = frozenset(
    "somente apenas exclusivamente unicamente so todos todas todo toda qualquer quaisquer sempre "
    "necessariamente obrigatoriamente independentemente privativamente exclusiva exclusivo "
    "only all every always solely exclusively any entire".split()
)
_MANDATORY = frozenset("deve devem devera deverao obrigatorio obrigatoria obrigado must shall required".split())
_PERMISSIVE = frozenset("pode podem podera poderao facultativo facultativa faculdade may can optional".split())
# Legal antonyms: the claim using one side while the passage uses only the other is a contradiction.
_ANTONYMS = (
    ("permitido", "vedado"),
    ("permitida", "vedada"),
    ("obrigatorio", "facultativo"),
    ("obrigatoria", "facultativa"),
    ("ativo", "passivo"),
    ("ativa", "passiva"),
    ("maior", "menor"),
    ("absoluta", "relativa"),
    ("absoluto", "relativo"),
    ("publico", "privado"),
    ("publica", "privada"),
    ("federal", "estadual"),
    ("federal", "municipal"),
    ("estadual", "municipal"),
    ("senado", "camara"),
    ("deputados", "senadores"),
    ("civil", "penal"),
    ("civil", "criminal"),
    ("dolo", "culpa"),
    ("inicio", "fim"),
    ("antes", "depois"),
    ("anterior", "posterior"),
    ("minimo", "maximo"),
    ("uteis", "corridos"),
    ("nulo", "anulavel"),
    ("competente", "incompetente"),
    ("direta", "indireta"),
    ("originaria", "recursal"),
    ("natos", "naturalizados"),
    ("nato", "naturalizado"),
    ("increase", "decrease"),
    ("rise", "fall"),
    ("more", "less"),
    ("before", "after"),
    ("won", "lost"),
    ("higher", "lower"),
    ("largest", "smallest"),
    ("first", "last"),
)
_ANTONYM_OF: dict[str, set[str]] = {}
for _a, _b in _ANTONYMS:
    _ANTONYM_OF.setdefault(_a, set()).add(_b)
    _ANTONYM_OF.setdefault(_b, set()).add(_a)
_CUES = _RESTRICTORS | _MANDATORY | _PERMISSIVE | frozenset(_ANTONYM_OF)

# Prepared texts kept per process (a draft needs ≈200, ≈5 KB each: a few concurrent drafts' rounds, ≈10 MB at most
# for passages of the usual size). _Text is immutable, so request threads share entries safely.
PREPARED_TEXTS = 2048
CITED_SETS = 256  # distinct citation sets ([1], [1, 3] …) whose windows are kept: a draft has a dozen or two

_ARTICLE_REF = re.compile(r"\b(?:art(?:igo)?s?\.?|§+|paragrafo|inciso|sumula|lei)\s*(?:n[ºo°.]*\s*)?(\d[\d.]*)")


@lru_cache(maxsize=1)
def idf_table() -> dict[str, float]:
    """Stem -> IDF over the statute corpus (rebuilt by `python -m harvey.evaluation.fit_faithfulness`); unseen = max."""
    path = resources.files("harvey") / "models" / "faith_idf_pt.json"
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class _Text:
    words: tuple[str, ...]
    stems: tuple[str, ...]
    sequence: tuple[str, ...]  # content stems in text order
    content: frozenset[str]
    numbers: frozenset[float]
    articles: frozenset[str]

    @classmethod
    @lru_cache(maxsize=PREPARED_TEXTS)
    def of(cls, text: str, language: str) -> _Text:
        """Folded, stemmed and parsed once per (text, language) in this process: a draft's critique rounds
        score every sentence against windows of the same passages (≈500 calls, ≈200 distinct texts)."""
        words = tokens(text)
        stems = stem_all(words, language)
        stop = STOPWORDS[language]
        sequence = tuple(s for w, s in zip(words, stems, strict=True) if w not in stop and len(w) > 1)
        articles = frozenset(m.rstrip(".") for m in _ARTICLE_REF.findall(fold(text)))
        return cls(tuple(words), tuple(stems), sequence, frozenset(sequence), frozenset(numbers(text)), articles)


def passage_units(passage: str) -> list[str]:
    """Sentences of a passage, with statute enumerations (";"-separated incisos) split as well."""
    units: list[str] = []
    for sentence in split_sentences(passage.replace("\n", " ")):
        units.extend(part.strip() for part in re.split(r";\s+|:\s+(?=[IVXLC]+\s*[-–—])", sentence) if part.strip())
    return units or [passage]


def windows(passages: list[str], max_units: int = 3) -> list[tuple[str, int]]:
    """Candidate evidence with its size in units: runs of up to `max_units` consecutive units, and
    each unit joined to the opening unit of its passage (the caput that an inciso completes)."""
    found: list[tuple[str, int]] = []
    for passage in passages:
        units = passage_units(passage)
        for i in range(len(units)):
            for size in range(1, max_units + 1):
                if i + size <= len(units):
                    found.append((" ".join(units[i : i + size]), size))
            if i > 1:
                found.append((f"{units[0]} {units[i]}", 2))
    return found


def _weights(stems: frozenset[str], language: str) -> dict[str, float]:
    if language != "pt":
        return dict.fromkeys(stems, 1.0)
    table = idf_table()
    top = max(table.values()) if table else 1.0
    return {s: table.get(s, top) for s in stems}


def _bigrams(text: _Text, language: str) -> set[tuple[str, str]]:
    stop = STOPWORDS[language]
    seq = [s for w, s in zip(text.words, text.stems, strict=True) if w not in stop]
    return set(zip(seq, seq[1:], strict=False))


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two stem sequences."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def _polarity(text: _Text, language: str, scope: frozenset[str] | None = None) -> int:
    """Parity of the negations in `text`; with `scope`, only of those whose next content word is in it.
    A source unit is read with the claim's stems as scope: "sem armas" or "salvo estipulação" in a
    statute says nothing about a claim that mentions neither. A claim is short: all its negations count."""
    negations, stop = NEGATIONS[language], STOPWORDS[language]
    count = 0
    for i, word in enumerate(text.words):
        if word in negations:
            following = zip(text.words[i + 1 :], text.stems[i + 1 :], strict=True)
            head = next((s for w, s in following if w not in stop and w not in negations and len(w) > 1), None)
            count += scope is None or head in scope
    return count % 2


@dataclass(frozen=True)
class _Cited:
    """The texts a set of cited passages is read as, split once per process (`_Text.of` then prepares each)."""

    language: str
    whole: str
    windows: tuple[tuple[str, int], ...]

    @classmethod
    @lru_cache(maxsize=CITED_SETS)
    def of(cls, passages: tuple[str, ...]) -> _Cited:
        whole = " ".join(passages)
        return cls(detect_language(whole), whole, tuple(windows(list(passages))))


def features(claim: str, passages: Sequence[str], language: str) -> dict[str, float | None]:
    """Feature vector (see FEATURES) of one claim sentence against the passages it cites."""
    cited = _Cited.of(tuple(passages))
    c = _Text.of(claim, language)
    weights = _weights(c.content, language)
    total = sum(weights.values()) or 1.0
    whole = _Text.of(cited.whole, language)
    best = best_unit = _Text.of("", language)
    best_cov = best_unit_cov = -1.0
    for window, size in cited.windows:
        w = _Text.of(window, language)
        cov = sum(weights[s] for s in c.content & w.content) / total
        if cov > best_cov:
            best, best_cov = w, cov
        if size == 1 and cov > best_unit_cov:
            best_unit, best_unit_cov = w, cov
    run = longest = 0
    for word, stem in zip(c.words, c.stems, strict=True):
        if word in STOPWORDS[language]:
            continue
        run = run + 1 if stem not in whole.content else 0
        longest = max(longest, run)
    claim_bigrams = _bigrams(c, language)
    claim_words = set(c.words)
    window_words = set(best.words)
    # how much of the claim the window restates, leaving out the words whose change the detectors look for
    cues = _CUES | NEGATIONS[language]
    core = c.content & {s for w, s in zip(c.words, c.stems, strict=True) if w not in cues}
    core_total = sum(weights[s] for s in core)
    polarity_differs = _polarity(c, language) != _polarity(best_unit, language, c.content)
    antonym = any(
        word in claim_words and word not in window_words and _ANTONYM_OF[word] & window_words for word in _ANTONYM_OF
    )
    return {
        "coverage": max(best_cov, 0.0),
        "lcs": _lcs(c.sequence, best.sequence) / len(c.sequence) if c.sequence else 1.0,
        "context_size": math.log1p(len(whole.content)),
        "coverage_all": sum(weights[s] for s in c.content & whole.content) / total,
        "bigram_coverage": len(claim_bigrams & _bigrams(best, language)) / len(claim_bigrams) if claim_bigrams else 1.0,
        "novel_run": float(longest >= NOVEL_RUN),
        "number_missing": float(len(c.numbers - whole.numbers) + 0.5 * len(c.numbers - best.numbers)),
        "article_missing": float(bool(c.articles - whole.articles)),
        "negation_mismatch": float(best_unit_cov >= NEGATION_MIN_COVERAGE and polarity_differs),
        "polarity_differs": float(polarity_differs),
        "unit_coverage": max(best_unit_cov, 0.0),
        "restated_coverage": sum(weights[s] for s in core & best.content) / core_total if core_total else 1.0,
        "novel_run_length": float(longest),
        "restrictor_missing": float(sum(w in _RESTRICTORS and w not in window_words for w in claim_words)),
        "modal_mismatch": float(
            bool(claim_words & _MANDATORY and not window_words & _MANDATORY and window_words & _PERMISSIVE)
            or bool(claim_words & _PERMISSIVE and not window_words & _PERMISSIVE and window_words & _MANDATORY)
        ),
        "antonym_conflict": float(antonym),
        "log_length": math.log1p(len(c.content)),
        "specificity": sum(weights.values()) / len(weights) if weights and language == "pt" else None,
    }


def sentence_features(claim: str, passages: Sequence[str]) -> list[dict[str, float | None]]:
    """Features of each sentence of `claim` against all `passages`."""
    language = _Cited.of(tuple(passages)).language
    return [features(sentence, passages, language) for sentence in split_sentences(claim) or [claim]]


def weakest_sentence(claim: str, passages: Sequence[str]) -> dict[str, float | None]:
    """Features of the claim's least covered sentence: the one that decides, used as a training row."""
    return min(sentence_features(claim, passages), key=lambda values: values["coverage"] or 0.0)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))


def predict(model: dict, row: Sequence[float | None]) -> float:
    """Support probability of one feature row under a fitted logistic model (evaluation.fit_faithfulness)."""
    z = model["bias"] + sum(
        w * (x - m) / s
        for w, x, m, s in zip(model["weights"], row, model["mean"], model["std"], strict=True)
        if x is not None  # a feature undefined for this input (see FEATURES) stays at its mean
    )
    return _sigmoid(z)


def veto_factor(values: dict[str, float | None], active: Collection[str] | None = None) -> float:
    """Product of the factors of every changed-fact detector that fires (see VETOES); `active` limits
    the vetoes considered, so faith_fit can measure each one's effect."""
    vetoes = dict(VETOES)
    if (values["restated_coverage"] or 0.0) >= RESTATEMENT_COVERAGE:
        vetoes |= RESTATEMENT_VETOES
    factor = 1.0
    for name, cut in vetoes.items():
        if values[name] and (active is None or name in active):
            factor *= cut
    return factor


def flags(values: dict[str, float | None]) -> list[str]:
    """Names of the changed-fact detectors that fire, for the reviewer."""
    return [name for name in FLAGS if values[name]]


def score(model: dict, values: dict[str, float | None]) -> float:
    """Fitted support probability of one sentence, cut down by every veto that fires."""
    return predict(model, [values[name] for name in model["features"]]) * veto_factor(values)
