"""Reference list in ABNT style (NBR 6023) for the sources a draft cites."""

from __future__ import annotations

from typing import Any

# Federal legislation in the shipped corpora, keyed by the `law` metadata of ingested documents.
LEGISLATION: dict[str, str] = {
    "CF88": "BRASIL. [Constituição (1988)]. Constituição da República Federativa do Brasil de 1988. "
    "Brasília, DF: Presidência da República, 1988.",
    "ADCT": "BRASIL. [Constituição (1988)]. Ato das Disposições Constitucionais Transitórias. "
    "Brasília, DF: Presidência da República, 1988.",
    "CC": "BRASIL. Lei nº 10.406, de 10 de janeiro de 2002. Institui o Código Civil. "
    "Diário Oficial da União: seção 1, Brasília, DF, 11 jan. 2002.",
    "CDC": "BRASIL. Lei nº 8.078, de 11 de setembro de 1990. Dispõe sobre a proteção do consumidor e dá "
    "outras providências. Diário Oficial da União: seção 1, Brasília, DF, 12 set. 1990.",
    "CPC": "BRASIL. Lei nº 13.105, de 16 de março de 2015. Código de Processo Civil. "
    "Diário Oficial da União: seção 1, Brasília, DF, 17 mar. 2015.",
    "CLT": "BRASIL. Decreto-Lei nº 5.452, de 1º de maio de 1943. Aprova a Consolidação das Leis do Trabalho. "
    "Diário Oficial da União: seção 1, Rio de Janeiro, 9 ago. 1943.",
    "CP": "BRASIL. Decreto-Lei nº 2.848, de 7 de dezembro de 1940. Código Penal. "
    "Diário Oficial da União: seção 1, Rio de Janeiro, 31 dez. 1940.",
    "CPP": "BRASIL. Decreto-Lei nº 3.689, de 3 de outubro de 1941. Código de Processo Penal. "
    "Diário Oficial da União: seção 1, Rio de Janeiro, 13 out. 1941.",
    "CTN": "BRASIL. Lei nº 5.172, de 25 de outubro de 1966. Código Tributário Nacional. "
    "Diário Oficial da União: seção 1, Brasília, DF, 27 out. 1966.",
    "L8906": "BRASIL. Lei nº 8.906, de 4 de julho de 1994. Dispõe sobre o Estatuto da Advocacia e a Ordem "
    "dos Advogados do Brasil (OAB). Diário Oficial da União: seção 1, Brasília, DF, 5 jul. 1994.",
}


def reference(citation: dict[str, Any]) -> str:
    """One ABNT entry: the cited provision (with the acts that reworded, added or challenge it), then
    the work it belongs to, and the page the passage is on when the source has pages ("p. 3")."""
    metadata = citation.get("metadata") or {}
    work = metadata.get("abnt") or LEGISLATION.get(str(metadata.get("law", "")).upper())
    if work is None:
        work = f"{citation['title'].upper()}. Acervo do escritório, documento {citation['source_id']}."
    page = citation.get("page")
    if isinstance(page, int):
        work = f"{work.rstrip('.')}, p. {page}."
    return f"[{citation['n']}] {citation['label']}{_vigencia_note(citation.get('vigencia_atos') or [])}. {work}"


def _vigencia_note(acts: list[dict[str, Any]]) -> str:
    """ ", com redação dada pela Lei nº 13.146/2015" and the like, in ABNT's wording."""
    by_kind: dict[str, list[str]] = {}
    for act in acts:
        by_kind.setdefault(act["tipo"], []).append(act["ato"])
    reworded = by_kind.get("redacao", [])
    added = [a for a in by_kind.get("inclusao", []) if a not in reworded]
    note = ""
    if reworded:
        note += ", com redação dada " + " e ".join(f"{_by(a)} {a}" for a in reworded)
    if added:
        note += ", incluído " + " e ".join(f"{_by(a)} {a}" for a in added)
    if by_kind.get("questionamento"):
        note += f" (questionado no STF: {'; '.join(by_kind['questionamento'])})"
    return note


def _by(act: str) -> str:
    return "pelo" if act.startswith("Decreto") else "pela"


def reference_list(citations: list[dict[str, Any]]) -> str:
    if not citations:
        return ""
    entries = "\n\n".join(reference(c) for c in sorted(citations, key=lambda c: c["n"]))
    return f"## Referências\n\n{entries}\n"
