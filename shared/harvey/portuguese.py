"""Portuguese text primitives shared by search and faithfulness: accent folding and the Snowball stemmer.

One definition of each, so the BM25 analyzer and the faithfulness screen can never disagree on what
"Código" and "codigo" are. PyStemmer is imported on first use: `import harvey.faithfulness` stays cheap.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache


def fold(text: str) -> str:
    """Lower-case and strip diacritics ("Código" -> "codigo"): drafts and statutes disagree on case and accents."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=2)
def stemmer(language: str = "pt"):  # noqa: ANN201 - PyStemmer has no type stubs
    import Stemmer  # type: ignore[import-not-found]  # PyStemmer ships no stubs

    return Stemmer.Stemmer("portuguese" if language == "pt" else "english")
