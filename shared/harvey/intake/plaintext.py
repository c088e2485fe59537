"""text/plain and text/markdown, and the decoding of text bytes (HTML's too).

Bytes are decoded by their BOM, else the declared charset, else as UTF-8, and when that fails as
Windows-1252: older Brazilian files (Word's "save as text", Notepad before 2019, e-mail exports) are in
the Windows "ANSI" code page, and cp1252 is Latin-1 plus the curly quotes and dashes those files use.
Declared "iso-8859-1", "latin1" or "ascii" are read as cp1252 too, as browsers do (WHATWG Encoding).
"""

from __future__ import annotations

import codecs
import re

from harvey.intake.document import Block, ParsedDocument, UnreadableDocument
from harvey.intake.lines import Outline, blocks_from_lines

BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
AS_CP1252 = {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "ascii", "us-ascii", "windows-1252", "cp1252"}

ATX_HEADING = re.compile(r"^(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
SETEXT_UNDERLINE = re.compile(r"^(=+|-+)\s*$")
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$")
TABLE_RULE = re.compile(r"^\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
THEMATIC_BREAK = re.compile(r"^(?:\*{3,}|-{3,}|_{3,})$")


def decode(data: bytes, charset: str | None = None) -> str:
    for bom, codec in BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    label = (charset or "").strip().strip("\"'").lower()
    if label in AS_CP1252:
        return data.decode("cp1252", errors="replace")
    if label:
        try:
            return data.decode(codecs.lookup(label).name)
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def text_of(data: bytes, charset: str | None, content_type: str) -> str:
    text = decode(data, charset)
    if "\x00" in text:
        raise UnreadableDocument(f"The file sent as {content_type} contains binary data, not text.")
    return text


def parse_text(data: bytes, charset: str | None) -> ParsedDocument:
    """Paragraphs are separated by blank lines or end with a sentence; headings as in a PDF (lines.py)."""
    text = text_of(data, charset, "text/plain")
    return ParsedDocument("text", 0, 0, blocks_from_lines(text.splitlines(), None, Outline(), wrapped=False))


def parse_markdown(data: bytes, charset: str | None) -> ParsedDocument:
    """CommonMark's block structure, enough of it: ATX and setext headings, paragraphs, list items, pipe
    tables and fenced code; inline markup is kept as written."""
    lines = text_of(data, charset, "text/markdown").splitlines()
    outline, blocks = Outline(), []
    paragraph: list[str] = []
    table: list[str] = []
    fenced: list[str] | None = None

    def flush() -> None:
        if paragraph:
            blocks.append(Block(" ".join(paragraph), None, outline.path, "paragraph"))
            paragraph.clear()
        if table:
            blocks.append(Block("\n".join(table), None, outline.path, "table"))
            table.clear()

    for raw in lines:
        if fenced is not None:
            if FENCE.match(raw):
                if fenced:
                    blocks.append(Block("\n".join(fenced), None, outline.path, "paragraph"))
                fenced = None
            else:
                fenced.append(raw)
            continue
        line = raw.strip()
        if FENCE.match(line):
            flush()
            fenced = []
        elif not line:
            flush()
        elif heading := ATX_HEADING.match(line):
            flush()
            text = heading.group(2).strip()
            if text:
                blocks.append(Block(text, None, outline.enter(len(heading.group(1)), text), "heading"))
        elif len(paragraph) == 1 and not table and SETEXT_UNDERLINE.match(line):
            text = paragraph.pop()
            blocks.append(Block(text, None, outline.enter(1 if line[0] == "=" else 2, text), "heading"))
        elif THEMATIC_BREAK.match(line):
            flush()
        elif line.startswith("|"):
            if paragraph:
                flush()
            if not TABLE_RULE.match(line):
                table.append(" | ".join(cell.strip() for cell in line.strip("|").split("|")))
        elif item := LIST_ITEM.match(line):
            flush()
            paragraph.append(item.group(1).strip())
        else:
            if table:
                flush()
            paragraph.append(line.removeprefix(">").strip() if line.startswith(">") else line)
    if fenced:
        blocks.append(Block("\n".join(fenced), None, outline.path, "paragraph"))
    flush()
    return ParsedDocument("markdown", 0, 0, [block for block in blocks if block.text])
