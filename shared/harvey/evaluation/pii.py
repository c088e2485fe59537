"""`harvey eval pii`: CPF/CNPJ and person-name detection measured on a CoNLL file (LeNER-Br format).

Each sentence is rebuilt as its tokens joined by single spaces and `harvey.pii.detect` runs on that
text end to end, so tokenisation, rules and the name model are all measured together.

Gold for CPF/CNPJ does not come from the NER tags (LeNER-Br tags real CPF/CNPJ numbers `O`): it
is every stretch of whole tokens, made only of digits and the separators . - / (as tokens or
inside them), whose digits number 11 and pass the CPF check or number 14 and pass the CNPJ check,
and that is not continued by more digits on either side (directly, or over a lone separator).
Whole, unglued tokens keep pieces of longer numbers out of the gold: a CNJ number is one token, and
a TSE number split as "1314-55 . 2012 6 000000" has an 11-digit prefix that passes the CPF check
by chance. Crossing tokens catches numbers the tokenizer split ("074.166.407 - 09"). Stretches are taken
leftmost and longest first, so a CNPJ is not also counted as a CPF inside it. The gold is built
without the detector's format rules, so a valid number written in a layout the detector refuses
counts against its recall. A prediction is correct when it has the same digits as a gold number
whose span it overlaps. Person names are scored entity by entity on exact character spans against
the `PESSOA` entities, as conlleval does.

A baseline runs alongside: a formatted-CPF/CNPJ regex with no check digits, and "two or more
capitalised words in a row" for names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from harvey.pii import cnpj_valid, cpf_valid, detect
from harvey.pii.names import spans_from_tags


@dataclass(frozen=True)
class Sentence:
    tokens: tuple[str, ...]
    tags: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    @property
    def offsets(self) -> list[tuple[int, int]]:
        out, pos = [], 0
        for token in self.tokens:
            out.append((pos, pos + len(token)))
            pos += len(token) + 1
        return out


def read_conll(path: Path) -> Iterator[Sentence]:
    """Sentences of a CoNLL file: "token TAG" per line (tag last), blank line between sentences."""
    tokens: list[str] = []
    tags: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                if tokens:
                    yield Sentence(tuple(tokens), tuple(tags))
                tokens, tags = [], []
                continue
            token, _, tag = line.rpartition(" ")
            tokens.append(token or tag)
            tags.append(tag if token else "O")
    if tokens:
        yield Sentence(tuple(tokens), tuple(tags))


_NUMBER_TOKEN = re.compile(r"\d+(?:[.\-/]\d+)*|[.\-/]")
_SEPARATOR = frozenset(".-/")


def _glued(tokens: tuple[str, ...], at: int, step: int) -> bool:
    """Whether more digits continue the number past token `at` (directly or over one separator)."""
    near, far = at + step, at + 2 * step
    if not 0 <= near < len(tokens):
        return False
    if tokens[near][0].isdigit():
        return True
    return tokens[near] in _SEPARATOR and 0 <= far < len(tokens) and tokens[far][:1].isdigit()


def gold_cpf_cnpj(sentence: Sentence) -> list[tuple[int, int, str]]:
    """(start, end, digits) of every valid CPF/CNPJ in the sentence text; see the module docstring."""
    tokens, offsets = sentence.tokens, sentence.offsets
    gold = []
    i = 0
    while i < len(tokens):
        best = None
        if tokens[i][0].isdigit() and not _glued(tokens, i, -1):
            digits = ""
            for j in range(i, len(tokens)):
                if not _NUMBER_TOKEN.fullmatch(tokens[j]):
                    break
                digits += re.sub(r"\D", "", tokens[j])
                if len(digits) > 14:
                    break
                valid = (len(digits) == 11 and cpf_valid(digits)) or (len(digits) == 14 and cnpj_valid(digits))
                if valid and tokens[j][-1].isdigit() and not _glued(tokens, j, 1):
                    best = (j, digits)
        if best:
            gold.append((offsets[i][0], offsets[best[0]][1], best[1]))
            i = best[0] + 1
        else:
            i += 1
    return gold


def person_spans(sentence: Sentence) -> set[tuple[int, int]]:
    offsets = sentence.offsets
    return {(offsets[s][0], offsets[e - 1][1]) for s, e in spans_from_tags(sentence.tags)}


_BASELINE_NUMBER = re.compile(r"\b\d{3}\.\d{3}\.\d{3}-\d{2}\b|\b\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2}\b")
_BASELINE_NAME = re.compile(r"[A-ZÀ-Ý][a-zà-ÿ]+(?: (?:d[aeo]s? )?[A-ZÀ-Ý][a-zà-ÿ]+)+")


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _f1(p: float | None, r: float | None) -> float | None:
    return round(2 * p * r / (p + r), 4) if p is not None and r is not None and p + r else None


@dataclass
class _Counts:
    gold: int = 0
    predicted: int = 0
    tp_gold: int = 0
    tp_predicted: int = 0

    def scores(self, with_f1: bool = False) -> dict:
        p, r = _ratio(self.tp_predicted, self.predicted), _ratio(self.tp_gold, self.gold)
        out = {
            "gold": self.gold,
            "predicted": self.predicted,
            "correct": self.tp_predicted,
            "precision": p,
            "recall": r,
        }
        if with_f1:
            out["f1"] = _f1(p, r)
        return out


def _score_numbers(counts: _Counts, gold: list[tuple[int, int, str]], predicted: list[tuple[int, int, str]]) -> None:
    def hit(a: tuple[int, int, str], b: tuple[int, int, str]) -> bool:
        return a[2] == b[2] and a[0] < b[1] and b[0] < a[1]

    counts.gold += len(gold)
    counts.predicted += len(predicted)
    counts.tp_gold += sum(any(hit(g, p) for p in predicted) for g in gold)
    counts.tp_predicted += sum(any(hit(p, g) for g in gold) for p in predicted)


def _score_spans(counts: _Counts, gold: set[tuple[int, int]], predicted: set[tuple[int, int]]) -> None:
    counts.gold += len(gold)
    counts.predicted += len(predicted)
    counts.tp_gold += len(gold & predicted)
    counts.tp_predicted += len(gold & predicted)


def evaluate(path: Path) -> dict:
    numbers, names, base_numbers, base_names = _Counts(), _Counts(), _Counts(), _Counts()
    sentences = 0
    for sentence in read_conll(path):
        sentences += 1
        text = sentence.text
        gold_numbers = gold_cpf_cnpj(sentence)
        gold_names = person_spans(sentence)
        matches = detect(text, names=True)
        _score_numbers(
            numbers,
            gold_numbers,
            [(m.start, m.end, re.sub(r"\D", "", text[m.start : m.end])) for m in matches if m.type in ("CPF", "CNPJ")],
        )
        _score_spans(names, gold_names, {(m.start, m.end) for m in matches if m.type == "PERSON"})
        _score_numbers(
            base_numbers,
            gold_numbers,
            [(m.start(), m.end(), re.sub(r"\D", "", m.group())) for m in _BASELINE_NUMBER.finditer(text)],
        )
        _score_spans(base_names, gold_names, {m.span() for m in _BASELINE_NAME.finditer(text)})
    harvey_numbers, harvey_names = numbers.scores(), names.scores(with_f1=True)
    return {
        "file": str(path),
        "sentences": sentences,
        "cpf_cnpj_precision": harvey_numbers["precision"],
        "cpf_cnpj_recall": harvey_numbers["recall"],
        "person_precision": harvey_names["precision"],
        "person_recall": harvey_names["recall"],
        "person_f1": harvey_names["f1"],
        "cpf_cnpj": harvey_numbers,
        "person": harvey_names,
        "baseline": {"cpf_cnpj": base_numbers.scores(), "person": base_names.scores(with_f1=True)},
    }


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def format_table(result: dict) -> str:
    rows = [("", "harvey", "baseline")]
    for group, keys in (
        ("cpf_cnpj", ("gold", "predicted", "correct", "precision", "recall")),
        ("person", ("gold", "predicted", "correct", "precision", "recall", "f1")),
    ):
        for key in keys:
            rows.append((f"{group}_{key}", _fmt(result[group][key]), _fmt(result["baseline"][group][key])))
    width = max(len(r[0]) for r in rows)
    lines = [f"{result['file']}: {result['sentences']} sentences"]
    lines += [f"{name:<{width}}  {a:>8}  {b:>8}" for name, a, b in rows]
    return "\n".join(lines)


@click.command("pii")
@click.option(
    "--conll",
    "conll",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CoNLL file: 'token TAG' lines, blank line between sentences (LeNER-Br).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(conll: Path, as_json: bool) -> None:
    """CPF/CNPJ precision/recall (gold from check digits) and PESSOA entity-level P/R/F1."""
    result = evaluate(conll)
    click.echo(json.dumps(result, indent=2, ensure_ascii=False) if as_json else format_table(result))
