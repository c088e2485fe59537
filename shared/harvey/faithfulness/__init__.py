"""Faithfulness screen: is each cited sentence of a draft backed by the sources it cites?

A lexical screen that sends sentences to human review, not a proof of entailment. A claim is scored
against the best-matching window of its cited passages (up to three consecutive sentences or statute
items, or an item joined to its caput): the IDF-weighted share of the claim's content stems that
window contains, through a logistic curve fitted on the OAB development pairs and chosen by
exam-grouped nested cross-validation among richer combinations (`python -m harvey.evaluation.fit_faithfulness`,
`models/faith_lr.json`; 0.733 ± 0.086 AUC over held-out exams, lexical overlap 0.676 on the same
folds). Then fixed vetoes cut the probability: a number, value or deadline absent from the cited text
("30 dias" against "15 dias"; one present only outside the matching window counts half), an
article/paragraph/inciso number the source lacks, a flipped negation against a unit the claim
restates, and, in a claim that restates the source (>= 90% of its weighted stems other than the
changed word), an added restrictor ("somente"), a mandatory/permissive modal swap ("deve"/"pode")
or a legal antonym (absoluta/relativa, federal/estadual...). An added clause (three content words
the sources lack) is flagged only. Every detector that fires is reported as a flag on the sentence.

What it cannot catch: paraphrase beyond shared stems (synonyms read as novelty), facts that need
world knowledge, the facts of the case or inference across passages, a faithful restatement that
answers a different question (OAB "EXCETO" distractors are verbatim incisos), a wrong date written
as a different but present number, entity/role swaps inside one passage ("A sued B" vs "B sued A";
"dois terços" vs "maioria absoluta" when both occur), and scope changes it has no rule for. Set
HARVEY_JUDGE_MODEL for a model judge (`harvey.drafting.judge`, passed in by the pipeline: this package is
pure, no I/O) whose verdict then decides each sentence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

_MODEL_PATH = Path(__file__).parents[1] / "models" / "faith_lr.json"


@lru_cache(maxsize=1)
def _model() -> dict:
    return json.loads(_MODEL_PATH.read_text(encoding="utf-8"))


THRESHOLD: float = float(_model()["threshold"])

_CITATION = re.compile(r"\[(\s*\d+\s*(?:(?:[,;]|[-–—]|\be\b)\s*\d+\s*)*)\]")
MAX_RANGE = 50  # "[1-999999]" expands to at most this many numbers


def parse_citations(sentence: str) -> list[int]:
    """Citation numbers in order of first use: "[1]", "[1, 2]", "[1][2]", "[1–3]", "[2; 4]", "[1 e 3]"."""
    found: list[int] = []
    for group in _CITATION.findall(sentence):
        for part in re.split(r"\s*(?:[,;]|\be\b)\s*", group.strip()):
            bounds = [int(x) for x in re.split(r"\s*[-–—]\s*", part) if x]
            if len(bounds) == 2 and bounds[0] <= bounds[1]:
                bounds = list(range(bounds[0], min(bounds[1], bounds[0] + MAX_RANGE) + 1))
            found.extend(n for n in bounds if n not in found)
    return found


def strip_unknown_citations(text: str, known: set[int]) -> str:
    """Rewrite every citation marker to the numbers in `known`, dropping markers left empty: Harvey
    never shows an invented source. Same marker grammar as `parse_citations`, so nothing the report
    reads as a citation survives unchecked."""

    def keep(match: re.Match[str]) -> str:
        valid = [n for n in parse_citations(match.group(0)) if n in known]
        return f"[{', '.join(str(n) for n in valid)}]" if valid else ""

    return _CITATION.sub(keep, text)


def strip_citations(sentence: str) -> str:
    return " ".join(_CITATION.sub(" ", sentence).split())


_STRUCTURE = re.compile(
    r"""^(?:
        excelent[ií]ssim[oa]|exm[oa]\b|ilustr[ií]ssim[oa]|ilm[oa]\b|egr[ée]gio|colendo|ao\s+ju[ií]zo|
        ao\s+(?:senhor|sr\.)|mm\.|autos?\s+n|processo\s+n|nestes\s+termos|neste\s+termos|termos\s+em\s+que|
        pede\s+deferimento|p\.\s*deferimento|respeitosamente|atenciosamente|cordialmente|
        advogad[oa]\b|oab\s*/|requer|pede\b|postula|diante\s+do\s+exposto|ante\s+o\s+exposto|
        isto\s+posto|pelo\s+exposto|[àa]\s+vista\s+do\s+exposto|dos?\s+(?:fatos|pedidos|direito)\b|
        da\s+(?:tempestividade|compet[êe]ncia|conclus[ãa]o)\b|[_\-=.]{3,}
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_PREAMBLE = re.compile(r"\bvem\b.{0,120}\b(?:apresentar|propor|ajuizar|interpor|oferecer|opor|requerer)\b", re.I)
_PLACE_DATE = re.compile(r"^[\w\sÀ-ú'/-]{2,40},?\s+\d{1,2}\s+de\s+[a-zç]+\s+de\s+\d{4}\.?$", re.IGNORECASE)


def is_structure(sentence: str) -> bool:
    """Headings, addressing and closing formulas, the party's preamble ("... vem apresentar"),
    requests, place/date and signature lines: no factual claim to ground. All-caps lines and
    fragments of under four words count as headings."""
    text = strip_citations(sentence).strip()
    letters = [ch for ch in text if ch.isalpha()]
    return (
        not letters
        or _STRUCTURE.match(text) is not None
        or _PLACE_DATE.match(text) is not None
        or _PREAMBLE.search(text) is not None
        or all(ch.isupper() for ch in letters)
        or len(text.split()) < 4
        or text.endswith(":")
    )


def support_score(claim: str, passages: Sequence[str]) -> float:
    """Probability-like score in [0,1] that `passages` entail `claim`: the weakest of its sentences."""
    return support(claim, passages)[0]


def support(claim: str, passages: Sequence[str]) -> tuple[float, list[str]]:
    """The support score and the changed-fact detectors that fired in any sentence of `claim`."""
    passages = [p for p in passages if p and p.strip()]
    claim = strip_citations(claim)
    if not passages or not claim.strip():
        return 0.0, []
    from harvey.faithfulness.features import FLAGS, flags, score, sentence_features

    per_sentence = sentence_features(claim, passages)
    fired = {name for values in per_sentence for name in flags(values)}
    return min(score(_model(), values) for values in per_sentence), [name for name in FLAGS if name in fired]


class Judge(Protocol):
    """A second opinion on one claim (`drafting.judge.Judging`, a model): this package does no I/O itself."""

    def ask(self, claim: str, passages: list[str]) -> dict: ...

    def summary(self) -> dict: ...


def assess(document_md: str, sources: Mapping[int, str], judge: Judge | None = None) -> dict:
    """Faithfulness report of a Markdown draft against its numbered sources.

    `supported` is the lexical screen's verdict (also kept as `screen`) unless `judge` answered for
    the sentence: then it is the judge's, and `judge` holds its verdict and reason. A judge that fails
    or times out leaves the screen's verdict and says so in `judge.error`; the report's `judge`
    counts answers and failures.

    Every sentence carrying a citation is scored against the passages it cites, and lists in `flags`
    the changed-fact detectors that fired (see `features.FLAGS`), whether or not they lowered
    the score; citing a number missing from `sources` makes the sentence unsupported with score 0
    and flag "citation_missing". Sentences without a citation
    that are not structure (see `is_structure`) are reported with citations [], score 0 and
    supported False, and counted in `uncited_claims`. The overall score is the share of claims that are
    supported by what they cite (uncited claims count against it), so a lawyer can read 0.75 as
    "three claims in four are backed"; `mean_support` is the mean score of the cited sentences.
    A draft with no claims at all scores 1.
    """
    from harvey.faithfulness.text import split_markdown

    report: list[dict] = []
    cited_scores: list[float] = []
    uncited = 0
    for sentence in split_markdown(document_md):
        citations = parse_citations(sentence)
        if not citations:
            if is_structure(sentence):
                continue
            uncited += 1
            uncited_claim = {"text": sentence, "citations": [], "support_score": 0.0, "supported": False}
            report.append(uncited_claim | {"screen": False, "judge": None, "flags": []})
            continue
        verdict = None
        if any(n not in sources for n in citations):
            score, flags = 0.0, ["citation_missing"]
        else:
            passages = [sources[n] for n in citations]
            score, flags = support(sentence, passages)
            verdict = judge.ask(strip_citations(sentence), passages) if judge else None
        cited_scores.append(score)
        screen = score >= THRESHOLD
        report.append(
            {
                "text": sentence,
                "citations": citations,
                "support_score": round(score, 4),
                "supported": verdict["supported"] if verdict and "supported" in verdict else screen,
                "screen": screen,
                "judge": verdict,
                "flags": flags,
            }
        )
    claims = len(cited_scores) + uncited
    supported = sum(1 for s in report if s["supported"])
    return {
        "score": round(supported / claims, 4) if claims else 1.0,
        "mean_support": round(sum(cited_scores) / len(cited_scores), 4) if cited_scores else 0.0,
        "threshold": THRESHOLD,
        "sentences": report,
        "unsupported": sum(1 for s in report if s["citations"] and not s["supported"]),
        "uncited_claims": uncited,
        "judge": judge.summary() if judge else None,
    }
