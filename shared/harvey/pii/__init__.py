"""Personal data (LGPD) detection, redaction and reversible pseudonymisation for Brazilian text.

Numbers are found by rules: CPF, CNPJ and credit cards are accepted only when their check digits
are valid, and types without a check digit (RG, bank account, CEP without a dash, bare phone
numbers) only next to a word that announces them, because legal text is full of numbers that are
not personal data (CNJ process numbers, OAB registrations, articles, dates).  Person names come
from a small CRF trained on LeNER-Br (`harvey.pii.names`), loaded only when `names=True`, so
importing this module stays cheap.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

TYPES = ("CPF", "CNPJ", "EMAIL", "PHONE", "RG", "CEP", "CREDIT_CARD", "BANK_ACCOUNT", "PERSON")
# Lower wins when two candidates overlap: validated numbers beat context-only guesses.
_PRIORITY = {
    t: i for i, t in enumerate(("EMAIL", "CNPJ", "CPF", "CREDIT_CARD", "PHONE", "BANK_ACCOUNT", "RG", "CEP", "PERSON"))
}


@dataclass(frozen=True)
class PiiMatch:
    type: str
    start: int
    end: int


# ---------------------------------------------------------------- check digits


def cpf_valid(digits: str) -> bool:
    """Módulo 11 check of an 11-digit CPF; repeated digits (000…, 111…) pass the maths but are void."""
    if len(digits) != 11 or not digits.isdigit() or len(set(digits)) == 1:
        return False
    n = [int(c) for c in digits]
    for k in (9, 10):
        total = sum(n[i] * (k + 1 - i) for i in range(k))
        if total * 10 % 11 % 10 != n[k]:
            return False
    return True


def cnpj_valid(digits: str) -> bool:
    """Módulo 11 check of a 14-digit CNPJ."""
    if len(digits) != 14 or not digits.isdigit() or len(set(digits)) == 1:
        return False
    n = [int(c) for c in digits]
    weights = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
    for k in (12, 13):
        total = sum(d * w for d, w in zip(n[:k], weights[13 - k :], strict=True))
        rest = total % 11
        if (0 if rest < 2 else 11 - rest) != n[k]:
            return False
    return True


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


# ---------------------------------------------------------------- CPF / CNPJ

# A run of digit groups joined by one separator (optionally spaced) or by a single space.
_NUMBER_RUN = re.compile(r"(?<![\w.\-/])\d+(?:(?: ?[.\-/\u2010-\u2013] ?| )\d+)*(?!\w)")
_GROUP = re.compile(r"\d+")
# Where a formatted CPF / CNPJ may be cut (cumulative digit counts): 000.000.000-00, 00.000.000/0000-00.
_CUTS = {11: ("CPF", frozenset({3, 6, 9}), cpf_valid), 14: ("CNPJ", frozenset({2, 5, 8, 12}), cnpj_valid)}


def _cpf_cnpj(text: str) -> Iterator[PiiMatch]:
    """CPF/CNPJ inside runs of digit groups, whatever the separators.

    A window of groups qualifies only if its internal cuts fall where the official format puts
    them (so the 7-2-4-1-2-4 groups of a CNJ number can never line up), it is not glued by
    punctuation to more digits (it would be a piece of a longer number) and its check digits hold.
    """
    for run in _NUMBER_RUN.finditer(text):
        groups = list(_GROUP.finditer(run.group()))
        base = run.start()
        taken_until = -1
        for i in range(len(groups)):
            if i and (groups[i].start() <= taken_until or run.group()[groups[i - 1].end() : groups[i].start()] != " "):
                continue
            best = None
            size = 0
            for j in range(i, len(groups)):
                size += len(groups[j].group())
                if size > 14:
                    break
                after = run.group()[groups[j].end() : groups[j + 1].start()] if j + 1 < len(groups) else " "
                if size not in _CUTS or after != " ":
                    continue
                kind, cuts, valid = _CUTS[size]
                bounds = {sum(len(g.group()) for g in groups[i : k + 1]) for k in range(i, j)}
                digits = "".join(g.group() for g in groups[i : j + 1])
                if bounds <= cuts and valid(digits):
                    best = PiiMatch(kind, base + groups[i].start(), base + groups[j].end())
            if best:
                taken_until = best.end - base
                yield best


# ---------------------------------------------------------------- other patterns

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w-])")

_CARD = re.compile(
    r"(?<![\w.\-/])(?:\d{4}(?:[ -]\d{4}){2}[ -]\d{1,7}|\d{4}[ -]\d{6}[ -]\d{4,5}|\d{13,19})(?![\w]|[.\-/]\d)"
)

# 8-digit landline or 9-digit mobile, then maybe more lines of the same trunk: 3302-0444/0445
_LOCAL = r"(?:9 ?\d{4}|[2-5]\d{3})[ .-]?\d{4}(?:/\d{4})*"
_DDD = r"[1-9]{2}"  # area codes 11–99 never contain a 0
_PHONE = re.compile(
    rf"""(?<![\w+])(?:
        (?:\+?55[ .-]?)?\(\s?0?{_DDD}\s?\)[ .-]?{_LOCAL}      # (11) 91234-5678, +55 (11) …
      | \+55[ .-]?0?{_DDD}[ .-]?{_LOCAL}                    # +55 11 91234-5678
      | (?:0?{_DDD}[ .-])?9[ ]?\d{{4}}-\d{{4}}                # 91234-5678, 92-98171-6151: mobiles
    )(?![\d]|[.\-/]\d)""",
    re.X,
)
_PHONE_CONTEXT = re.compile(
    rf"(?i:\b(?:tel(?:efone)?s?|fones?|cel(?:ular)?|whats(?:app)?|contato)\b\.?\s*(?:n[º°o.]+\s*)?:?\s*)"
    rf"((?:\(?0?{_DDD}\)?[ .-]?)?{_LOCAL})(?![\d]|[.\-/]\d)"
)

_NUMBER_LABEL = r"\s*(?:n[º°o]\.?|n\.\s?º|número|num\.)?\s*[:\-]?\s*"
_RG = re.compile(
    r"(?i:(?<!\w)(?:RG|R\.G\.|registro geral|c[ée]dula de identidade|carteira de identidade|identidade)"
    r"(?!\w))" + _NUMBER_LABEL + r"((?:[A-Z]{1,2}[- ]?)?\d{1,2}\.?\d{3}\.?\d{3}(?:[- ]?[\dXx])?(?![\w]|[.\-/]\d))"
)

_CEP_DASH = re.compile(r"(?<![\w.\-/])\d{2}\.?\d{3}-\d{3}(?![\w\-/]|\.\d)")
_CEP_CONTEXT = re.compile(r"(?i:(?<!\w)CEP(?!\w))" + _NUMBER_LABEL + r"(\d{2}\.?\d{3}-?\d{3})(?![\w\-/]|\.\d)")

_BANK_END = r"(?![\w]|[.\-/]\d)"
_BANK = re.compile(
    r"(?i:(?<!\w)(?:ag[êe]ncia|ag\.|ag(?=\s)|conta(?:[ -]corrente|[ -]poupan[çc]a|[ -]banc[áa]ria)?)(?!\w))"
    + _NUMBER_LABEL
    + r"((?:\d{4,13}|\d{1,3}(?:\.\d{3})+)(?:-[\dXx])?|\d{1,3}-[\dXx])"
    + _BANK_END
)
# In legal citations "c/c" means "combined with" ("arts. 355 c/c 359"): only an account with its
# check digit ("c/c 12345-6") counts.
_BANK_CC = re.compile(r"(?i:(?<!\w)c/[cp](?!\w))" + _NUMBER_LABEL + r"(\d[\d.]{0,14}-[\dXx])" + _BANK_END)


def _simple(kind: str, pattern: re.Pattern[str], group: int = 0) -> Callable[[str], Iterator[PiiMatch]]:
    def find(text: str) -> Iterator[PiiMatch]:
        for m in pattern.finditer(text):
            yield PiiMatch(kind, m.start(group), m.end(group))

    return find


_CARD_CONTEXT = re.compile(r"(?i:cart[ãa]o|cr[ée]dito|d[ée]bito|card|visa|master|amex|elo)\W")


def _cards(text: str) -> Iterator[PiiMatch]:
    """Luhn-valid numbers with a card's leading digit; bare digit strings also need a card word
    just before, since long unformatted numbers (old process numbers, protocols) pass Luhn 1 in 10."""
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        bare = digits == m.group()
        if bare and not _CARD_CONTEXT.search(text[max(0, m.start() - 40) : m.start()]):
            continue
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits):
            yield PiiMatch("CREDIT_CARD", m.start(), m.end())


_RULES: tuple[Callable[[str], Iterator[PiiMatch]], ...] = (
    _cpf_cnpj,
    _simple("EMAIL", _EMAIL),
    _cards,
    _simple("PHONE", _PHONE),
    _simple("PHONE", _PHONE_CONTEXT, 1),
    _simple("RG", _RG, 1),
    _simple("CEP", _CEP_DASH),
    _simple("CEP", _CEP_CONTEXT, 1),
    _simple("BANK_ACCOUNT", _BANK, 1),
    _simple("BANK_ACCOUNT", _BANK_CC, 1),
)


def _resolve(candidates: Sequence[PiiMatch]) -> list[PiiMatch]:
    """Keep the strongest candidate where several overlap, then order by position."""
    kept: list[PiiMatch] = []
    for c in sorted(candidates, key=lambda m: (_PRIORITY[m.type], m.start, m.start - m.end)):
        if all(c.end <= k.start or c.start >= k.end for k in kept):
            kept.append(c)
    return sorted(kept, key=lambda m: m.start)


# ---------------------------------------------------------------- public API


def detect(text: str, *, names: bool = False) -> list[PiiMatch]:
    """Personal data in `text`, sorted and non-overlapping; `names=True` adds the CRF's PERSON spans."""
    candidates = [m for rule in _RULES for m in rule(text)]
    if names:
        from harvey.pii.names import find_names

        candidates += [PiiMatch("PERSON", s, e) for s, e in find_names(text)]
    return _resolve(candidates)


def _replace(text: str, matches: Sequence[PiiMatch], token: Callable[[PiiMatch], str]) -> str:
    parts, last = [], 0
    for m in matches:
        parts += [text[last : m.start], token(m)]
        last = m.end
    parts.append(text[last:])
    return "".join(parts)


def redact(text: str, *, names: bool = False) -> tuple[str, list[PiiMatch]]:
    """Text with each match replaced by "[TYPE]"; the matches keep offsets into the original text."""
    matches = detect(text, names=names)
    return _replace(text, matches, lambda m: f"[{m.type}]"), matches


def report(matches: Sequence[PiiMatch]) -> dict:
    """What was found, for logs and audit: types and offsets only, never the values."""
    return {
        "total": len(matches),
        "by_type": dict(Counter(m.type for m in matches)),
        "spans": [{"type": m.type, "start": m.start, "end": m.end} for m in matches],
    }


def redact_for_log(text: str) -> str:
    """Rules only (no model load), so a logging filter can call it on every record."""
    return redact(text)[0]


_TOKEN_PREFIX = {"PERSON": "PESSOA"}
_TOKEN = re.compile(r"\b(?:PESSOA|" + "|".join(t for t in TYPES if t != "PERSON") + r")_\d+\b")


class Pseudonymizer:
    """Reversible substitution for text sent to an external LLM.

    Equal values (same digits, same e-mail, same name up to case and spacing) share one token, so
    the model can still tell parties apart; `restore` puts the first-seen spelling back into the
    model's answer. One instance holds the mapping of one request: do not share it across tenants.
    """

    def __init__(self, *, names: bool = True) -> None:
        self._names = names
        self._tokens: dict[tuple[str, str], str] = {}
        self._values: dict[str, str] = {}
        self._counts: Counter[str] = Counter()

    @staticmethod
    def _key(kind: str, value: str) -> tuple[str, str]:
        if kind in ("EMAIL", "PERSON"):
            return kind, " ".join(value.casefold().split())
        return kind, re.sub(r"[^\dXx]", "", value).upper()

    def _token(self, kind: str, value: str) -> str:
        key = self._key(kind, value)
        if key not in self._tokens:
            self._counts[kind] += 1
            token = f"{_TOKEN_PREFIX.get(kind, kind)}_{self._counts[kind]}"
            self._tokens[key] = token
            self._values[token] = value
        return self._tokens[key]

    def pseudonymize(self, text: str) -> str:
        matches = detect(text, names=self._names)
        return _replace(text, matches, lambda m: self._token(m.type, text[m.start : m.end]))

    def restore(self, text: str) -> str:
        return _TOKEN.sub(lambda m: self._values.get(m.group(), m.group()), text)
