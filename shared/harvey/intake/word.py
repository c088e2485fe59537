"""DOCX: python-docx for the package and its styles, the body's XML for text, footnotes from their own part.

The archive is checked before python-docx opens it (a DOCX is a ZIP a hostile sender controls): member count,
declared and actually inflated size, compression ratio, member names, no archive hidden in a part. Then:
- headings: a paragraph's outline level, else its style's "Heading N" (or a style based on one), or "Title";
- text: every w:t of a paragraph, so tracked insertions, hyperlinks and content controls are read (python-docx's
  Paragraph.text skips them) and deletions (w:delText) are not;
- tables: one block a table, a line a row, cells joined by " | ";
- footnotes and endnotes: python-docx does not expose them, so their parts are parsed with lxml (no entities,
  no network) and each note follows the paragraph that cites it, under the same headings.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator

from harvey.intake.document import Block, ParsedDocument, UnreadableDocument
from harvey.intake.lines import Outline

MAX_MEMBERS = 1000  # Word writes about 15; images and embedded objects add one each
MAX_INFLATED_BYTES = 128 * 1024 * 1024  # over twice the 50 MiB upload limit: images do not compress
MAX_RATIO = 100  # Word's XML deflates 5-20x; a zip bomb 1,000x
RATIO_FLOOR_BYTES = 1024 * 1024  # small members may compress as well as they like
EMBEDDINGS = "word/embeddings/"  # where Word keeps embedded workbooks, themselves ZIPs: never inflated here
ARCHIVE_MAGIC = (b"PK\x03\x04", b"7z\xbc\xaf", b"Rar!", b"\x1f\x8b")
READ_CHUNK = 1024 * 1024

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
TEXT_TAGS = {f"{W}t": None, f"{W}tab": " ", f"{W}br": " ", f"{W}cr": " ", f"{W}noBreakHyphen": "-"}
HEADING_STYLE = re.compile(r"^Heading ([1-9])$")
TITLE_RANK = 0
NOTE_PARTS = ("footnotes", "endnotes")
SEPARATOR_NOTES = {"separator", "continuationSeparator", "continuationNotice"}


def parse_docx(data: bytes) -> ParsedDocument:
    check_archive(data)
    from docx import Document
    from docx.opc.constants import RELATIONSHIP_TYPE
    from docx.text.paragraph import Paragraph

    try:
        document = Document(io.BytesIO(data))
    except Exception as error:  # noqa: BLE001 - python-docx raises KeyError, lxml errors, ValueError … on bad parts
        raise UnreadableDocument(f"The DOCX is corrupt ({type(error).__name__}).") from None
    notes = {
        kind: read_notes(rel.target_part.blob, kind)
        for rel in document.part.rels.values()
        for kind in NOTE_PARTS
        if rel.reltype == getattr(RELATIONSHIP_TYPE, kind.upper()) and not rel.is_external
    }
    outline, blocks = Outline(), []
    for element in body_elements(document.element.body):
        if element.tag == f"{W}tbl":
            text = table_text(element)
            if text:
                blocks.append(Block(text, None, outline.path, "table"))
        elif text := paragraph_text(element):
            rank = heading_rank(Paragraph(element, document))
            if rank is None:
                blocks.append(Block(text, None, outline.path, "paragraph"))
            else:
                blocks.append(Block(text, None, outline.enter(rank, text), "heading"))
        for kind in NOTE_PARTS:
            for reference in element.iter(f"{W}{kind[:-1]}Reference"):
                note = notes.get(kind, {}).pop(reference.get(f"{W}id"), "")
                if note:
                    blocks.append(Block(note, None, outline.path, "footnote"))
    blocks += [Block(note, None, (), "footnote") for found in notes.values() for note in found.values() if note]
    return ParsedDocument("python-docx", 0, 0, blocks)


def check_archive(
    data: bytes,
    *,
    max_members: int = MAX_MEMBERS,
    max_inflated: int = MAX_INFLATED_BYTES,
    max_ratio: int = MAX_RATIO,
) -> None:
    """Refuse a ZIP that would be unsafe to open, reading every member once with a running byte count."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        raise UnreadableDocument("The DOCX is not a valid ZIP archive; it may be truncated.") from None
    with archive:
        members = archive.infolist()
        if len(members) > max_members:
            raise UnreadableDocument(f"The DOCX holds {len(members)} files, more than the limit of {max_members}.")
        names = [member.filename for member in members]
        if len(set(names)) != len(names) or any(unsafe(name) for name in names):
            raise UnreadableDocument("The DOCX has duplicate or unsafe file names inside.")
        if sum(member.file_size for member in members) > max_inflated:
            raise UnreadableDocument(f"The DOCX inflates to more than {max_inflated // 2**20} MiB.")
        for member in members:
            if member.file_size > RATIO_FLOOR_BYTES and member.file_size > max_ratio * max(member.compress_size, 1):
                raise UnreadableDocument(
                    f"The DOCX inflates {member.file_size // max(member.compress_size, 1)} times its size "
                    f"in {member.filename} (a zip bomb)."
                )
        inflated = 0
        for member in members:
            try:
                with archive.open(member) as stream:
                    first = True
                    while chunk := stream.read(READ_CHUNK):
                        if first and chunk.startswith(ARCHIVE_MAGIC) and not member.filename.startswith(EMBEDDINGS):
                            raise UnreadableDocument(f"The DOCX hides an archive in {member.filename}.")
                        first = False
                        inflated += len(chunk)
                        if inflated > max_inflated:
                            raise UnreadableDocument(f"The DOCX inflates to more than {max_inflated // 2**20} MiB.")
            except UnreadableDocument:
                raise
            except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError, ValueError):
                raise UnreadableDocument(f"The DOCX is corrupt or encrypted ({member.filename}).") from None


def unsafe(name: str) -> bool:
    return name.startswith(("/", "\\")) or "\\" in name or ".." in name.split("/") or ":" in name


def body_elements(container) -> Iterator:
    """Paragraphs and tables in reading order, looking inside content controls (w:sdt)."""
    for child in container.iterchildren():
        if child.tag in (f"{W}p", f"{W}tbl"):
            yield child
        elif child.tag == f"{W}sdt":
            content = child.find(f"{W}sdtContent")
            if content is not None:
                yield from body_elements(content)


def paragraph_text(paragraph) -> str:
    parts = []
    for node in paragraph.iter(*TEXT_TAGS):
        replacement = TEXT_TAGS[node.tag]
        parts.append(node.text or "" if replacement is None else replacement)
    return " ".join("".join(parts).split())


def table_text(table) -> str:
    rows = (" | ".join(cell_text(cell) for cell in row.iterchildren(f"{W}tc")) for row in table.iterchildren(f"{W}tr"))
    return "\n".join(row for row in rows if row.replace("|", "").strip())


def cell_text(cell) -> str:
    return " ".join(text for text in (paragraph_text(p) for p in cell.iter(f"{W}p")) if text)


def heading_rank(paragraph) -> int | None:
    """Outline level 0-8 → rank 1-9 (Word's own test of a heading); else the style's name, or its base's."""
    levels = paragraph._p.xpath("./w:pPr/w:outlineLvl/@w:val")
    if levels and levels[0].isdigit() and int(levels[0]) < 9:
        return int(levels[0]) + 1
    style = paragraph.style
    for _ in range(10):
        if style is None:
            return None
        if style.name == "Title":
            return TITLE_RANK
        match = HEADING_STYLE.match(style.name or "")
        if match:
            return int(match.group(1))
        style = style.base_style
    return None


def read_notes(xml: bytes, kind: str) -> dict[str, str]:
    """Note id → its text, for the footnotes or endnotes part."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError:
        raise UnreadableDocument(f"The DOCX's {kind} are corrupt.") from None
    notes = {}
    for note in root.iterchildren(f"{W}{kind[:-1]}"):
        if note.get(f"{W}type") not in SEPARATOR_NOTES:
            notes[note.get(f"{W}id")] = cell_text(note)
    return notes
