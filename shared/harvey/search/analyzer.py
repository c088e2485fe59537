"""Portuguese text analysis for the sparse (lexical) side of hybrid retrieval.

Legal text is matched on its exact words ("culpa exclusiva da vítima", "art. 186", "§ 2º"), which a
dense model blurs. This analyzer folds accents and case, stems with Snowball Portuguese (PyStemmer),
drops function words, and rewrites legal abbreviations to canonical tokens so that "art.", "arts."
and "artigo", or "§" and "parágrafo", match each other while staying searchable.
Terms are hashed to 31-bit ids so documents and queries need no shared vocabulary file.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass

from harvey.portuguese import fold, stemmer

VERSION = "pt-legal-1"

# Function words only: legal vocabulary ("lei", "artigo", "prazo", "nulo") must stay searchable.
STOPWORDS = frozenset(
    """
    a à ao aos aquela aquelas aquele aqueles aquilo as às até com como da das de dela delas dele deles
    depois do dos e é ela elas ele eles em entre era eram essa essas esse esses esta estas este estes
    eu foi foram ha há isso isto ja já lhe lhes mais mas me mesmo meu meus minha minhas muito na nas
    nem no nos nós o os ou para pela pelas pelo pelos por qual quando que quem se sem ser seu seus
    sua suas são também te tem têm teu tua um uma umas uns você vocês vos à às num numa nuns numas
    dum duma pra pro sobre sob cujo cuja cujos cujas onde seja sejam será serão sido sendo tendo
    ter tinha estar está estão estava houver haverá
    assinale opção opcao correta correto incorreta incorreto alternativa acordo respeito relação
    """.split()
)

# Canonical tokens for legal structure markers, applied after folding (keys are folded forms).
_ABBREVIATIONS = {
    "art": "artigo",
    "arts": "artigo",
    "artigos": "artigo",
    "inc": "inciso",
    "incs": "inciso",
    "incisos": "inciso",
    "par": "paragrafo",
    "paragrafos": "paragrafo",
    "al": "alinea",
    "alineas": "alinea",
    "cf88": "cf",
    "crfb": "cf",
    "constituicao": "cf",
    "ncpc": "cpc",
    "eoab": "eaoab",
}
# Kept verbatim: stemming would merge "cc"/"cp"/"cpc" etc. with ordinary words or drop them.
_PROTECTED = frozenset(
    {
        "artigo",
        "inciso",
        "paragrafo",
        "alinea",
        "caput",
        "cf",
        "cc",
        "cpc",
        "cp",
        "cpp",
        "clt",
        "cdc",
        "ctn",
        "eaoab",
        "oab",
        "adct",
        "stf",
        "stj",
        "tcu",
        "tst",
        "sumula",
    }
)

_TOKEN = re.compile(r"§+|[0-9]+(?:[.,][0-9]+)*|[^\W\d_]+")
_ORDINAL = re.compile(r"(\d)\s*[ºª°o]\b")


_FOLDED_STOPWORDS = frozenset(fold(w) for w in STOPWORDS)


def tokens(text: str) -> list[str]:
    """Analyzed terms of `text`, in order (duplicates kept, for term frequencies).

    Words are stemmed before folding: Snowball's Portuguese rules read the accents ("ação").
    """
    out: list[str] = []
    to_stem: list[tuple[int, str]] = []
    for raw in _TOKEN.findall(_ORDINAL.sub(r"\1", text.lower())):
        if raw.startswith("§"):
            out.append("paragrafo")
        elif raw[0].isdigit():
            out.append(raw.replace(".", "").replace(",", "."))
        else:
            folded = fold(raw)
            term = _ABBREVIATIONS.get(folded, folded)
            if term in _PROTECTED:
                out.append(term)
            elif term not in _FOLDED_STOPWORDS and len(term) > 1:
                to_stem.append((len(out), raw))
                out.append(term)
    if to_stem:
        stems = stemmer().stemWords([raw for _, raw in to_stem])
        for (pos, _), stem in zip(to_stem, stems, strict=True):
            out[pos] = fold(stem)
    return out


def term_id(term: str) -> int:
    """Stable 31-bit id of a term (crc32), so sparse vectors need no vocabulary file."""
    return zlib.crc32(term.encode("utf-8")) & 0x7FFFFFFF


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class Bm25Weights:
    """BM25 term-frequency saturation for documents; Qdrant's IDF modifier supplies the IDF half.

    avg_len is a fixed expectation (in analyzed terms) rather than a corpus statistic, so a
    chunk's vector never changes when other chunks are added.
    """

    k1: float = 0.9
    b: float = 0.4
    avg_len: float = 60.0

    def document(self, text: str) -> SparseVector:
        return _sparse(self._document_weights(tokens(text)))

    def query(self, text: str) -> SparseVector:
        """Query terms weighted by their count: a long question repeats what it is about."""
        return _sparse(self._query_weights(text))

    def expanded_query(self, text: str, feedback: list[str], terms: int, weight: float) -> SparseVector:
        """Pseudo-relevance feedback: add the `terms` heaviest terms of the top results at `weight`.

        Short queries ("aditivo a contrato") miss the vocabulary the relevant texts use; the first
        results supply it. Qdrant's IDF still applies, so common feedback terms weigh little.
        """
        weights = self._query_weights(text)
        pooled: Counter[str] = Counter()
        for doc in feedback:
            pooled.update(self._document_weights(tokens(doc)))
        extra = [t for t, _ in pooled.most_common() if t not in weights][:terms]
        return _sparse({**weights, **dict.fromkeys(extra, weight)})

    def _query_weights(self, text: str) -> dict[str, float]:
        return {t: float(n) for t, n in Counter(tokens(text)).items()}

    def _document_weights(self, terms: list[str]) -> dict[str, float]:
        norm = self.k1 * (1.0 - self.b + self.b * len(terms) / self.avg_len)
        return {t: tf * (self.k1 + 1.0) / (tf + norm) for t, tf in Counter(terms).items()}


def _sparse(weights: dict[str, float]) -> SparseVector:
    merged: dict[int, float] = {}
    for term, w in weights.items():
        idx = term_id(term)
        merged[idx] = merged.get(idx, 0.0) + w
    indices = sorted(merged)
    return SparseVector(indices=indices, values=[merged[i] for i in indices])
