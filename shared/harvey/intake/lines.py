"""Lines of text without markup (a PDF page, an OCR result, a .txt) → heading and paragraph blocks.

Headings are found by a heuristic, not by layout: a line that starts with a legal structure word (PARTE,
LIVRO, TÍTULO, CAPÍTULO, SEÇÃO, SUBSEÇÃO, CLÁUSULA, ANEXO) or a short line in capitals ("DOS FATOS",
"I – DO DIREITO", "EXCELENTÍSSIMO SENHOR JUIZ"). A bare "CAPÍTULO I" followed by its title line
("Disposições Gerais"), as Planalto prints statutes, becomes one heading joined by a space. Font size and
weight are not looked at, so a bold mixed-case heading reads as a paragraph.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from harvey.intake.document import Block

# Rank in the legal hierarchy: a heading closes every open heading of the same or a lower rank.
STRUCTURE_RANKS = {
    "PARTE": 1,
    "LIVRO": 2,
    "TITULO": 3,
    "CAPITULO": 4,
    "SECAO": 5,
    "SUBSECAO": 6,
    "CLAUSULA": 7,
    "ANEXO": 1,
}
CAPITALS_RANK = 8
MAX_HEADING_CHARS = 120
MIN_HEADING_CAPITALS = 4
# A line at least this share of the page's widest line is a full justified line, not a paragraph's end.
FULL_LINE_SHARE = 0.85

NUMERAL = re.compile(
    r"(?:[IVXLCDM]+|\d+[ºª°]?|(?:PRIMEIR|SEGUND|TERCEIR|QUART|QUINT|SEXT|SETIM|OITAV|NON|DECIM|VIGESIM|UNIC)[AO])"
    r"(?:-[A-Z])?\.?"
)
DASHES = ("-", "–", "—", ":")
NEW_ITEM = re.compile(
    r"^(?:Art\.|§|Parágrafo único|Par[áa]grafo\s|[IVXLCDM]+\s*[-–—]|[a-z]\)|\d+(?:\.\d+)*[.)]\s|CLÁUSULA|Cláusula)"
)
SENTENCE_END = (".", ":", ";", "!", "?")


def fold(text: str) -> str:
    """Upper case without accents, so "Seção", "SEÇÃO" and "SECAO" are one keyword."""
    return "".join(c for c in unicodedata.normalize("NFD", text.upper()) if unicodedata.category(c) != "Mn")


def structure_heading(line: str) -> tuple[int, bool] | None:
    """(rank, bare) when the line opens with a structure word and a numeral ("CAPÍTULO I", "Seção II – Da
    Forma"), or is all capitals after it; bare means nothing follows the numerals, so the title is next line."""
    tokens = fold(line).split()
    rank = STRUCTURE_RANKS.get(tokens[0].rstrip(".:"))
    if rank is None:
        return None
    numerals = 0
    while numerals < 3 and 1 + numerals < len(tokens) and NUMERAL.fullmatch(tokens[1 + numerals]):
        numerals += 1
    rest = tokens[1 + numerals :]
    capitals = not any(c.islower() for c in line)
    if not rest:
        return (rank, True) if numerals or capitals else None
    if (numerals and rest[0] in DASHES) or capitals:
        return rank, False
    return None


def heading_rank(line: str) -> int | None:
    """The rank of a heading line, None for a line of body text."""
    if len(line) > MAX_HEADING_CHARS or line.endswith((",", ";")):
        return None
    found = structure_heading(line)
    if found:
        return found[0]
    capitals = sum(c.isupper() for c in line)
    if capitals >= MIN_HEADING_CAPITALS and not any(c.islower() for c in line) and not line.endswith(":"):
        return CAPITALS_RANK
    return None


class Outline:
    """The open headings while reading a document, carried across pages."""

    def __init__(self) -> None:
        self._open: list[tuple[int, str]] = []

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self._open)

    def enter(self, rank: int, text: str) -> tuple[str, ...]:
        while self._open and self._open[-1][0] >= rank:
            self._open.pop()
        self._open.append((rank, text))
        return self.path


def clean(line: str) -> str:
    """One line with PDF artefacts removed: soft hyphens, pdfium's hyphen and no-break markers, NULs."""
    line = line.replace("\u00ad", "\x02").replace("\ufffe", "\x02").replace("\x00", "")
    return " ".join(line.split()).replace(" \x02", "\x02")


def join(paragraph: str, line: str) -> str:
    """Append a wrapped line: a line broken after a hyphen keeps it and takes no space ("constitui-se")."""
    if paragraph.endswith("\x02"):
        return paragraph[:-1] + line
    if paragraph.endswith("-") and len(paragraph) > 1 and paragraph[-2].isalpha() and line[:1].islower():
        return paragraph + line
    return f"{paragraph} {line}"


def blocks_from_lines(lines: Iterable[str], page: int | None, outline: Outline, *, wrapped: bool) -> list[Block]:
    """Headings and paragraphs in order.

    `wrapped` is for laid-out text (PDF, OCR), where a paragraph runs over several lines: a line ending a
    sentence ends the paragraph only when it is short or the next line starts a new item (Art., §, inciso),
    and a blank line inside a sentence does not. Otherwise (a .txt) a blank line or a line that ends a
    sentence ends its paragraph.
    """
    cleaned = [clean(line) for line in lines]
    widest = max((len(line) for line in cleaned), default=0)
    blocks: list[Block] = []
    paragraph = ""
    last_line = ""

    def flush() -> None:
        nonlocal paragraph
        text = paragraph.replace("\x02", "")
        if text:
            blocks.append(Block(text, page, outline.path, "paragraph"))
        paragraph = ""

    index = 0
    gap = False
    while index < len(cleaned):
        line = cleaned[index]
        index += 1
        if not line:
            gap = True
            continue
        if gap and not (wrapped and paragraph and continues(last_line, line)):
            flush()
        gap = False
        rank = heading_rank(line)
        if rank is not None and (not paragraph or last_line.endswith(SENTENCE_END)):
            flush()
            found = structure_heading(line)
            if found and found[1]:
                title_at = next((i for i in range(index, len(cleaned)) if cleaned[i]), None)
                if title_at is not None and is_title(cleaned[title_at]):
                    line = f"{line} {cleaned[title_at]}"
                    index = title_at + 1
            blocks.append(Block(line, page, outline.enter(rank, line), "heading"))
            continue
        if paragraph and ends_paragraph(last_line, line, widest, wrapped=wrapped):
            flush()
        paragraph = join(paragraph, line) if paragraph else line
        last_line = line
    flush()
    return blocks


def is_title(line: str) -> bool:
    """The line after a bare "CAPÍTULO I" that names it ("Disposições Gerais"), not the first article."""
    return (
        len(line) <= MAX_HEADING_CHARS
        and not line.endswith(SENTENCE_END + (",",))
        and not NEW_ITEM.match(line)
        and heading_rank(line) in (None, CAPITALS_RANK)
    )


def continues(previous: str, line: str) -> bool:
    """A blank line inside a sentence ("… nos casos especificados" / "em lei, …") is layout, not a break."""
    return not previous.endswith(SENTENCE_END) and line[:1].islower()


def ends_paragraph(previous: str, line: str, widest: int, *, wrapped: bool) -> bool:
    if not previous.endswith(SENTENCE_END):
        return False
    if not wrapped:
        return True
    return bool(NEW_ITEM.match(line)) or len(previous) < FULL_LINE_SHARE * widest
