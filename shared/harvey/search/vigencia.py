"""Vigência of statute provisions, read from the inline markers of the official compilations.

The Planalto "compilado" texts mark every change where it happened: "(Revogado)", "(Vetado)",
"(Redação dada pela Lei nº …)", "(Incluído pela …)", "(Vide ADI …)", "(Vide Recurso Extraordinário
nº …)". `parse` keeps only the text in force of one article (revoked and vetoed units, and a wording
superseded by a later one, are left out, so they can never be quoted as a ground) and records the
amending acts and constitutional challenges per unit. The markers themselves stay in the text: they
are part of the official compilation and the retrieval models were fitted on text that has them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VIGENTE, ALTERADA, QUESTIONADA = "vigente", "alterada", "questionada"
REDACAO, INCLUSAO, QUESTIONAMENTO = "redacao", "inclusao", "questionamento"
FLAG = "questionada"  # faithfulness flag on a sentence grounded on a challenged provision

_UNIT = re.compile(
    r"^\s*(?:(?P<art>Art(?:igo)?\.?\s*\d)|(?P<par>§\s*\d+\s*[º°o]?|Par[áa]grafo\s+[úu]nico)|"
    r"(?P<inc>[IVXLC]+)\s*[-–—]|(?P<ali>[a-z])\))"
)
_NOTE = re.compile(r"\(([^()]*)\)")
_GONE = re.compile(r"^\s*(?:revogad[oa]s?|suprimid[oa]s?|vetad[oa]s?)\b", re.IGNORECASE)
_AMENDED = re.compile(
    r"^\s*(?:(?P<redacao>Reda[çc][ãa]o\s+dada)|(?:(?:Par[áa]grafo|Inciso|Al[íi]nea|Artigo)\s+)?"
    r"(?:inclu[íi]d[oa]s?|acrescentad[oa]s?))\s+pel[oa]\s+(?P<act>.+)$",
    re.IGNORECASE,
)
_CHALLENGE = re.compile(
    r"^\s*Vide\s+(?P<kind>ADIN|ADI|ADC|ADO|ADPF|Recurso\s+Extraordin[áa]rio|RE)\b\s*(?:n\s*[º°o.]?\s*)?"
    r"(?P<num>\d[\d.\-]*\d|\d)",
    re.IGNORECASE,
)
_ACT = re.compile(
    r"^(?P<kind>Lei\s+Complementar|Lei|Emenda\s+Constitucional|Medida\s+Provis[óo]ria|Decreto-?\s?[Ll]ei|Decreto)"
    r"\s*n?\s*[º°o]?\s*\.?\s*(?P<num>\d[\d.\-]*)\s*,?\s*(?:de\s+)?(?P<date>.*)$",
    re.IGNORECASE,
)
_YEAR = re.compile(r"(?:19|20)\d{2}")


@dataclass(frozen=True)
class Act:
    kind: str  # REDACAO, INCLUSAO or QUESTIONAMENTO
    act: str  # "Lei nº 13.146/2015", "RE 646.721"
    unit: str  # "caput", "inc. II", "§ 2º", "§ 2º, inc. I"


@dataclass(frozen=True)
class Provision:
    text: str  # the text in force, "" when the whole article is revoked or vetoed
    acts: tuple[Act, ...]
    removed: tuple[str, ...]  # units left out, e.g. "§ 2º, inc. II"
    probes: tuple[tuple[str, str], ...] = ()  # (unit, opening text) to find a unit inside a chunk


def act_name(raw: str) -> str:
    """ "Lei nº 13.146, de 2015" -> "Lei nº 13.146/2015"; unparsed text is returned tidied."""
    raw = " ".join(raw.split()).rstrip(" .;,")
    match = _ACT.match(raw)
    if not match:
        return raw
    kind = " ".join(match["kind"].split())
    kind = {
        "lei complementar": "Lei Complementar",
        "lei": "Lei",
        "emenda constitucional": "Emenda Constitucional",
        "decreto": "Decreto",
    }.get(kind.lower(), kind)
    kind = "Decreto-Lei" if kind.lower().replace(" ", "").startswith("decreto-lei") else kind
    kind = "Medida Provisória" if kind.lower().startswith("medida") else kind
    number = match["num"].rstrip(".-")
    if number.isdigit() and len(number) > 3:
        number = f"{int(number):,}".replace(",", ".")
    years = _YEAR.findall(match["date"])
    return f"{kind} nº {number}/{years[-1]}" if years else f"{kind} nº {number}"


def _challenge_name(kind: str, number: str) -> str:
    kind = kind.upper()
    kind = "RE" if kind.startswith("RECURSO") else "ADI" if kind == "ADIN" else kind
    return f"{kind} {number}"


def _units(text: str) -> list[tuple[re.Match[str] | None, str]]:
    """The article's units (caput, §, inciso, alínea), each with its marker match; a line without a
    marker continues the unit above it."""
    units: list[tuple[re.Match[str] | None, str]] = []
    for line in text.split("\n"):
        match = _UNIT.match(line)
        if match or not units:
            units.append((match, line))
        else:
            units[-1] = (units[-1][0], f"{units[-1][1]}\n{line}")
    return units


def _marker(match: re.Match[str] | None, kind: str) -> str:
    return re.sub(r"\s+", "", match[kind]).rstrip("-–—") if match and match[kind] else ""


def parse(article: str) -> Provision:
    """The text in force of one article and what its markers say, unit by unit."""
    units = _units(article)
    keys: list[tuple[str, str, str]] = []
    labels: list[str] = []
    paragraph = inciso = ""
    for match, _ in units:
        if match and match["par"]:
            paragraph, inciso = _marker(match, "par"), ""
        elif match and match["inc"]:
            inciso = _marker(match, "inc")
        keys.append((paragraph, inciso, _marker(match, "ali")))
        labels.append(_label(paragraph, inciso, _marker(match, "ali")))
    kept: list[int] = []
    removed: list[str] = []
    gone_paragraph: str | None = None
    acts: list[Act] = []
    for i, (_, line) in enumerate(units):
        notes = _NOTE.findall(line)
        key = keys[i]
        if gone_paragraph is not None and key[0] == gone_paragraph and key[1:] != ("", ""):
            removed.append(labels[i])
            continue
        gone_paragraph = None
        if any(_GONE.match(note) for note in notes):
            if key == ("", "", ""):
                return Provision("", (), ("caput",))
            removed.append(labels[i])
            gone_paragraph = key[0] if key[1:] == ("", "") and key[0] else None
            continue
        amended = [m for m in (_AMENDED.match(note) for note in notes) if m]
        earlier = next((j for j in kept if keys[j] == key), None) if key != ("", "", "") else None
        if earlier is not None and amended:
            kept.remove(earlier)  # the compilation lists the old wording first, then the one in force
            removed.append(f"{labels[earlier]} (redação anterior)")
            acts = [a for a in acts if a.unit != labels[earlier]]
        kept.append(i)
        for m in amended:
            acts.append(Act(REDACAO if m["redacao"] else INCLUSAO, act_name(m["act"]), labels[i]))
        for note in notes:
            challenge = _CHALLENGE.match(note)
            if challenge:
                acts.append(Act(QUESTIONAMENTO, _challenge_name(challenge["kind"], challenge["num"]), labels[i]))
    probes = tuple((labels[i], _probe(units[i][1])) for i in kept)
    return Provision("\n".join(units[i][1] for i in kept).strip(), tuple(acts), tuple(removed), probes)


def _label(paragraph: str, inciso: str, alinea: str) -> str:
    parts = []
    if paragraph:
        parts.append("parágrafo único" if paragraph.lower().startswith("par") else _paragraph(paragraph))
    if inciso:
        parts.append(f"inc. {inciso}")
    if alinea:
        parts.append(f"alínea {alinea}")
    return ", ".join(parts) or "caput"


def _paragraph(marker: str) -> str:
    number = int(re.sub(r"\D", "", marker))
    return f"§ {number}º" if number < 10 else f"§ {number}"


def _probe(line: str) -> str:
    return " ".join(line.split())[:80]


def chunk_vigencia(provision: Provision, chunk_text: str) -> dict[str, Any]:
    """The vigência of one chunk of an article: the caput's acts always (its wording frames every
    piece), a unit's acts when that unit is in the chunk."""
    flat = " ".join(chunk_text.split())
    present = {unit for unit, probe in provision.probes if probe and probe in flat}
    acts = [a for a in provision.acts if a.unit == "caput" or a.unit in present]
    return summarise(acts)


def summarise(acts: list[Act]) -> dict[str, Any]:
    """{"status", "atos": [{"tipo", "ato", "dispositivos"}]}, one entry per act, units in order."""
    merged: dict[tuple[str, str], list[str]] = {}
    for a in acts:
        units = merged.setdefault((a.kind, a.act), [])
        if a.unit not in units:
            units.append(a.unit)
    kinds = {kind for kind, _ in merged}
    status = QUESTIONADA if QUESTIONAMENTO in kinds else ALTERADA if kinds else VIGENTE
    return {"status": status, "atos": [{"tipo": k, "ato": a, "dispositivos": u} for (k, a), u in merged.items()]}


def of_chunk(text: str, metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    """A chunk's vigência: recorded at ingest, else read from its own text (chunks indexed before
    vigência was recorded); None for documents that are not statute articles."""
    recorded = metadata.get("vigencia")
    if isinstance(recorded, dict):
        return recorded
    if "article" not in metadata:
        return None
    return summarise(list(parse(text).acts))


def citation_fields(text: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The `vigencia` and `vigencia_atos` fields of a citation row."""
    found = of_chunk(text, metadata)
    return {"vigencia": found["status"] if found else None, "vigencia_atos": found["atos"] if found else []}


def describe(citation: Mapping[str, Any]) -> str:
    """One line for a reviewer: "alterada: Lei nº 13.146/2015", "questionada: RE 646.721; RE 878.694"."""
    status = citation.get("vigencia")
    if not status:
        return ""
    acts = citation.get("vigencia_atos") or []
    wanted = QUESTIONAMENTO if status == QUESTIONADA else None
    names = [a["ato"] for a in acts if wanted is None or a["tipo"] == wanted]
    return f"{status}: {'; '.join(names)}" if names else status


def flag_questioned(report: dict[str, Any], statuses: Mapping[int, str | None]) -> dict[str, Any]:
    """The faithfulness report with FLAG on every sentence that cites a challenged provision."""
    sentences = []
    for sentence in report["sentences"]:
        if any(statuses.get(n) == QUESTIONADA for n in sentence["citations"]) and FLAG not in sentence["flags"]:
            sentence = {**sentence, "flags": [*sentence["flags"], FLAG]}
        sentences.append(sentence)
    return {**report, "sentences": sentences}
