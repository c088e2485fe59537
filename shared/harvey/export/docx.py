"""A run's draft as a Word document (.docx), the format lawyers finish their work in.

The document is derived from the run alone (`ExportedDraft`), and deterministically: the same run gives the
same bytes, so an exported file can be re-derived from the audit at any time and compared byte for byte.
python-docx writes the document; its zip is then rewritten with the run's `created_at` as every member's
timestamp and a fixed member order. Byte identity holds for the same python-docx, lxml and zlib (pinned in
requirements.lock and the Debian image); a new version of one of them may change the bytes, not the content.

Markdown understood (what the drafting pipeline writes): `#`, `##`, `###` headings (the first `#` of the
draft is its title), paragraphs, `**bold**` and `*italic*`, `-`/`*`/`+` bullets, `1.` numbered items, `>`
quotations, and the `## Referências` section, whose entries become one left-aligned paragraph each.
Citation markers such as `[1]` stay in the text as written.

Without a template the page follows ABNT (A4; margins 3 cm top and left, 2 cm bottom and right; Times New
Roman 12, 1.5 line spacing, justified body). With a template (a firm's letterhead .docx) its page setup,
headers, footers and styles are kept: the draft replaces a body paragraph that reads exactly `{{ draft }}`,
and a template without one has its body dropped and replaced by the draft. Either way every footer gains
the audit line "Harvey · run … · sha256 … · página X de Y".
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docx.document import Document
    from docx.section import _Footer
    from docx.styles.style import ParagraphStyle
    from docx.text.paragraph import Paragraph

PLACEHOLDER = re.compile(r"^\{\{\s*draft\s*\}\}$")
FONT = "Times New Roman"
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_MARKED = (
    ("bullet", re.compile(r"^\s*[-*+]\s+(.+)$")),
    ("number", re.compile(r"^\s*\d+[.)]\s+(.+)$")),
    ("quote", re.compile(r"^\s*>\s?(.*)$")),
)
_EMPHASIS = re.compile(r"\*\*\*(?=\S)(.+?)(?<=\S)\*\*\*|\*\*(?=\S)(.+?)(?<=\S)\*\*|\*(?=\S)(.+?)(?<=\S)\*")
_ZIP_EPOCH = datetime(1980, 1, 1, tzinfo=UTC)
_FIRST_MEMBERS = ("[Content_Types].xml", "_rels/.rels")
_THUMBNAIL = "http://schemas.openxmlformats.org/package/2006/relationships/metadata/thumbnail"
_STYLE_OF_KIND = {"title": "Title", "reference": "Bibliography", "quote": "Quote", "paragraph": "Normal"}


class InvalidTemplate(ValueError):
    """The template is not a Word document python-docx can open (a .docx, not .doc or .dotx)."""


@dataclass(frozen=True)
class ExportedDraft:
    """What a Word export is made from: the run's document and the facts that tie it to its audit row."""

    run_id: str
    document_md: str
    model_used: str
    output_hash: str
    doc_type: str
    created_at: datetime

    @classmethod
    def from_run(cls, run: dict[str, Any]) -> ExportedDraft:
        """From a run as the pipeline or the store returns it (`created_at` a datetime or ISO 8601 text)."""
        created = run["created_at"]
        return cls(
            run_id=str(run["run_id"]),
            document_md=run["document_md"],
            model_used=run["model_used"],
            output_hash=run["output_hash"],
            doc_type=run["doc_type"],
            created_at=created if isinstance(created, datetime) else datetime.fromisoformat(created),
        )

    @property
    def created_utc(self) -> datetime:
        """`created_at` in UTC (a naive value is taken as UTC)."""
        if self.created_at.tzinfo is None:
            return self.created_at.replace(tzinfo=UTC)
        return self.created_at.astimezone(UTC)


@dataclass(frozen=True)
class Block:
    """One Markdown block: kind is title, heading, paragraph, bullet, number, quote or reference."""

    kind: str
    text: str
    level: int = 0


def parse(document_md: str) -> list[Block]:
    """The draft's Markdown as a list of blocks; lines of one paragraph are joined by a space."""
    blocks: list[Block] = []
    in_references = False
    open_block: Block | None = None
    for line in document_md.splitlines():
        if not line.strip():
            open_block = None
            continue
        heading = _HEADING.match(line)
        marked = [(kind, m) for kind, pattern in _MARKED if (m := pattern.match(line))]
        if heading:
            level, text = min(len(heading.group(1)), 3), heading.group(2)
            is_title = level == 1 and not blocks
            blocks.append(Block("title" if is_title else "heading", text, level))
            in_references = _folded(text).startswith("referencias")
            open_block = None
        elif marked:
            kind, match = marked[0]
            if kind == "quote" and open_block is not None and open_block.kind == "quote":
                blocks[-1] = open_block = Block("quote", f"{open_block.text} {match.group(1)}".strip())
                continue
            open_block = Block(kind, match.group(1).strip())
            blocks.append(open_block)
        elif open_block is not None:
            blocks[-1] = open_block = Block(open_block.kind, f"{open_block.text} {line.strip()}")
        else:
            open_block = Block("reference" if in_references else "paragraph", line.strip())
            blocks.append(open_block)
    return blocks


def render(draft: ExportedDraft, template: bytes | None = None) -> bytes:
    """The draft as .docx bytes, alone on an ABNT page or inside the given letterhead template."""
    import zipfile

    import docx

    if template is None:
        document = docx.Document()
        _abnt_page(document)
    else:
        try:
            document = docx.Document(io.BytesIO(template))
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise InvalidTemplate(f"template is not a .docx document: {exc}") from exc
    blocks = parse(draft.document_md)
    anchor = _draft_anchor(document)
    _write_blocks(document, anchor, blocks)
    _drop_anchor(anchor)
    for footer in _footers(document):
        _audit_footer(document, footer, draft)
    title = next((b.text for b in blocks if b.kind == "title"), draft.doc_type)
    _core_properties(document, draft, _plain(title))
    for rel_id, rel in list(document.part.package.rels.items()):
        if rel.reltype == _THUMBNAIL:
            del document.part.package.rels[rel_id]
    saved = io.BytesIO()
    document.save(saved)
    return _stable_zip(saved.getvalue(), max(draft.created_utc, _ZIP_EPOCH))


def _draft_anchor(document: Document) -> Paragraph:
    """The paragraph the draft is written in front of: the template's `{{ draft }}` paragraph, or an empty one
    left alone in a body whose content was dropped (its final section properties stay)."""
    for paragraph in document.paragraphs:
        if PLACEHOLDER.match(paragraph.text.strip()):
            return paragraph
    body = document.element.body
    for child in list(body):
        if child is not body.sectPr:
            body.remove(child)
    return document.add_paragraph()


def _drop_anchor(anchor: Paragraph) -> None:
    """Remove the anchor, keeping it (emptied) when it ends a template section."""
    p = anchor._p
    if p.pPr is not None and p.pPr.sectPr is not None:
        for child in list(p):
            if child is not p.pPr:
                p.remove(child)
        return
    p.getparent().remove(p)


def _write_blocks(document: Document, anchor: Paragraph, blocks: list[Block]) -> None:
    from docx.enum.text import WD_ALIGN_PARAGRAPH

    previous, item_number, list_num_id = "", 0, None
    for block in blocks:
        if block.kind in ("bullet", "number"):
            item_number = item_number + 1 if block.kind == previous else 1
            paragraph = _list_item(document, anchor, block.kind, item_number)
            if block.kind == "number" and item_number == 1:
                list_num_id = _restart_numbering(document, paragraph)
            elif block.kind == "number" and list_num_id is not None:
                _set_num_id(paragraph, list_num_id)
        else:
            paragraph = anchor.insert_paragraph_before(style=_style(document, _style_name(block)))
            if block.kind == "reference":
                paragraph.alignment = WD_ALIGN_PARAGRAPH.LEFT
            elif block.kind in ("paragraph", "quote"):
                paragraph.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
        _add_runs(paragraph, block.text)
        previous = block.kind


def _style_name(block: Block) -> str:
    return f"Heading {block.level}" if block.kind == "heading" else _STYLE_OF_KIND[block.kind]


def _list_item(document: Document, anchor: Paragraph, kind: str, number: int) -> Paragraph:
    """A list paragraph in the List Bullet / List Number style; in a template without that style, a List
    Paragraph (or Normal) one with its bullet or number written out."""
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Cm

    name = "List Bullet" if kind == "bullet" else "List Number"
    if name in document.styles:
        paragraph = anchor.insert_paragraph_before(style=document.styles[name])
    else:
        fallback = "List Paragraph" if "List Paragraph" in document.styles else "Normal"
        paragraph = anchor.insert_paragraph_before(style=document.styles[fallback])
        paragraph.paragraph_format.left_indent = Cm(1.25)
        paragraph.paragraph_format.first_line_indent = Cm(-0.63)
        paragraph.add_run("•\t" if kind == "bullet" else f"{number}.\t")
    paragraph.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
    return paragraph


def _restart_numbering(document: Document, paragraph: Paragraph) -> int | None:
    """A new numbering instance for a numbered list that starts here, so each list counts from 1 (Word and
    LibreOffice otherwise continue one list's numbers into the next)."""
    style = paragraph.style
    ppr = style.element.pPr if style is not None else None
    if ppr is None or ppr.numPr is None or ppr.numPr.numId is None:
        return None
    numbering = document.part.numbering_part.element
    abstract_id = numbering.num_having_numId(ppr.numPr.numId.val).abstractNumId.val
    num = numbering.add_num(abstract_id)
    num.add_lvlOverride(ilvl=0).add_startOverride(1)
    _set_num_id(paragraph, num.numId)
    return num.numId


def _set_num_id(paragraph: Paragraph, num_id: int) -> None:
    num_pr = paragraph._p.get_or_add_pPr().get_or_add_numPr()
    num_pr.get_or_add_ilvl().val = 0
    num_pr.get_or_add_numId().val = num_id


def _add_runs(paragraph: Paragraph, text: str) -> None:
    """Text with `***bold italic***`, `**bold**` and `*italic*` as formatted runs; all else verbatim."""
    position = 0
    for match in _EMPHASIS.finditer(text):
        if match.start() > position:
            paragraph.add_run(text[position : match.start()])
        both, bold, italic = match.groups()
        run = paragraph.add_run(both or bold or italic)
        run.bold = bool(both or bold) or None
        run.italic = bool(both or italic) or None
        position = match.end()
    if position < len(text):
        paragraph.add_run(text[position:])


def _plain(text: str) -> str:
    return _EMPHASIS.sub(lambda m: next(g for g in m.groups() if g), text)


def _folded(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", _plain(text).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip()


def _style(document: Document, name: str) -> ParagraphStyle:
    """The document's paragraph style of that name; one that a template lacks is added, based on Normal
    (bold, kept with the next paragraph, at its outline level for headings and the title)."""
    from docx.enum.style import WD_STYLE_TYPE
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Cm, Pt

    if name in document.styles:
        return document.styles[name]
    style = document.styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
    style.base_style = document.styles["Normal"]
    if name == "Bibliography":
        style.paragraph_format.space_after = Pt(12)
        style.paragraph_format.line_spacing = 1.0
        return style
    if name == "Quote":
        style.paragraph_format.left_indent = Cm(4)
        style.font.size = Pt(10)
        return style
    style.font.bold = True
    style.paragraph_format.keep_with_next = True
    style.paragraph_format.space_before = Pt(12)
    style.paragraph_format.space_after = Pt(6)
    if name == "Title":
        style.paragraph_format.alignment = WD_ALIGN_PARAGRAPH.CENTER
    outline = OxmlElement("w:outlineLvl")
    outline.set(qn("w:val"), str(int(name[-1]) - 1 if name.startswith("Heading") else 0))
    style.element.get_or_add_pPr().append(outline)
    return style


def _abnt_page(document: Document) -> None:
    """A4 with ABNT margins and styles: Times New Roman 12, 1.5 spacing, 1.25 cm first-line indent, 6 pt after
    each paragraph, black bold headings (section headings in capitals), references single-spaced, long
    quotations at 4 cm."""
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml.ns import qn
    from docx.shared import Cm, Pt, RGBColor

    section = document.sections[0]
    section.page_width, section.page_height = Cm(21), Cm(29.7)
    section.top_margin, section.left_margin = Cm(3), Cm(3)
    section.bottom_margin, section.right_margin = Cm(2), Cm(2)
    section.header_distance, section.footer_distance = Cm(1.25), Cm(1)

    defaults = document.styles.element.find(qn("w:docDefaults"))
    run_defaults = defaults.find(f"{qn('w:rPrDefault')}/{qn('w:rPr')}")
    fonts = run_defaults.find(qn("w:rFonts"))
    fonts.attrib.clear()
    for attribute in ("ascii", "hAnsi", "eastAsia", "cs"):
        fonts.set(qn(f"w:{attribute}"), FONT)
    for tag in ("w:sz", "w:szCs"):
        run_defaults.find(qn(tag)).set(qn("w:val"), "24")
    run_defaults.find(qn("w:lang")).attrib.update({qn("w:val"): "pt-BR", qn("w:eastAsia"): "pt-BR"})
    defaults.find(f"{qn('w:pPrDefault')}/{qn('w:pPr')}/{qn('w:spacing')}").attrib.update(
        {qn("w:after"): "0", qn("w:line"): "360", qn("w:lineRule"): "auto"}
    )

    normal = document.styles["Normal"].paragraph_format
    normal.first_line_indent, normal.space_after = Cm(1.25), Pt(6)
    for name, size, before, after in (
        ("Title", 14, 0, 24),
        ("Heading 1", 12, 18, 6),
        ("Heading 2", 12, 18, 6),
        ("Heading 3", 12, 12, 6),
    ):
        style = document.styles[name]
        rpr = style.element.get_or_add_rPr()
        for theme_font_or_spacing in rpr.findall(qn("w:rFonts")) + rpr.findall(qn("w:spacing")):
            rpr.remove(theme_font_or_spacing)
        style.font.size = Pt(size)
        style.font.bold = True
        style.font.italic = False
        style.font.all_caps = name in ("Heading 1", "Heading 2")
        style.font.color.rgb = RGBColor(0, 0, 0)
        ppr = style.element.get_or_add_pPr()
        for border in ppr.findall(qn("w:pBdr")):
            ppr.remove(border)
        formats = style.paragraph_format
        formats.space_before, formats.space_after, formats.line_spacing = Pt(before), Pt(after), 1.5
        formats.first_line_indent = Cm(0)
        formats.keep_with_next = True
        formats.alignment = WD_ALIGN_PARAGRAPH.CENTER if name == "Title" else WD_ALIGN_PARAGRAPH.LEFT

    references = _style(document, "Bibliography")
    references.paragraph_format.first_line_indent = Cm(0)
    quote = document.styles["Quote"]
    quote.font.italic, quote.font.size = False, Pt(10)
    quote.paragraph_format.left_indent, quote.paragraph_format.first_line_indent = Cm(4), Cm(0)
    quote.paragraph_format.line_spacing, quote.paragraph_format.space_after = 1.0, Pt(12)
    for name in ("List Bullet", "List Number"):
        formats = document.styles[name].paragraph_format
        formats.left_indent, formats.first_line_indent = Cm(1.25), Cm(-0.63)
    footer = document.styles["Footer"]
    footer.font.size = Pt(8)
    footer.paragraph_format.first_line_indent = Cm(0)


def _footers(document: Document) -> list[_Footer]:
    """Every footer a page can show: each section's own default footer, and its first-page and even-page
    footers where the document uses them. A section that inherits its footer adds none."""
    footers = []
    for index, section in enumerate(document.sections):
        candidates = [section.footer]
        if section.different_first_page_header_footer:
            candidates.append(section.first_page_footer)
        if document.settings.odd_and_even_pages_header_footer:
            candidates.append(section.even_page_footer)
        footers += [f for f in candidates if index == 0 or not f.is_linked_to_previous]
    return footers


def _audit_footer(document: Document, footer: _Footer, draft: ExportedDraft) -> None:
    """Append "Harvey · run … · sha256 … · página X de Y" (PAGE and NUMPAGES fields) to the footer."""
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Cm, Pt

    paragraphs = footer.paragraphs
    last = paragraphs[-1] if paragraphs else None
    if last is not None and not last.text and not last._p.r_lst:
        paragraph = last
    else:
        paragraph = footer.add_paragraph()
    if "Footer" in document.styles:
        paragraph.style = document.styles["Footer"]
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    paragraph.paragraph_format.first_line_indent = Cm(0)
    parts: list[str | tuple[str, str]] = [
        f"Harvey · run {draft.run_id} · sha256 {draft.output_hash[:16]} · página ",
        ("PAGE", "1"),
        " de ",
        ("NUMPAGES", "1"),
    ]
    for part in parts:
        if isinstance(part, str):
            paragraph.add_run(part).font.size = Pt(8)
        else:
            _field(paragraph, *part)


def _field(paragraph: Paragraph, instruction: str, shown: str) -> None:
    """A Word field (begin, instruction, separator, last shown value, end) that the renderer recomputes."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Pt

    for piece in ("begin", "instr", "separate", "shown", "end"):
        run = paragraph.add_run()
        run.font.size = Pt(8)
        if piece == "instr":
            element = OxmlElement("w:instrText")
            element.set(qn("xml:space"), "preserve")
            element.text = f" {instruction} "
        elif piece == "shown":
            element = OxmlElement("w:t")
            element.text = shown
        else:
            element = OxmlElement("w:fldChar")
            element.set(qn("w:fldCharType"), piece)
        run._r.append(element)


def _core_properties(document: Document, draft: ExportedDraft, title: str) -> None:
    """Only what the run says: the template's or python-docx's author, editor, dates and revision are
    replaced, so the properties carry no machine, user or clock."""
    properties = document.core_properties
    element = properties._element
    for child in list(element):
        element.remove(child)
    created = draft.created_utc.replace(tzinfo=None)
    properties.title = title
    properties.subject = draft.doc_type
    properties.identifier = draft.run_id
    properties.keywords = f"harvey; run {draft.run_id}; model {draft.model_used}; sha256 {draft.output_hash}"
    properties.comments = (
        f"Minuta gerada pelo Harvey. run_id={draft.run_id}; model_used={draft.model_used}; "
        f"output_hash=sha256:{draft.output_hash}"
    )
    properties.author = "Harvey"
    properties.language = "pt-BR"
    properties.revision = 1
    properties.created = created
    properties.modified = created


def _stable_zip(package: bytes, when: datetime) -> bytes:
    """The package rewritten so that nothing but its content decides its bytes: one timestamp, a fixed member
    order ([Content_Types].xml, the package relationships, then by name), one compression level, DOS attributes."""
    import zipfile

    stamp = when.timetuple()[:6]
    with zipfile.ZipFile(io.BytesIO(package)) as source:
        members = {name: source.read(name) for name in source.namelist()}
    order = [n for n in _FIRST_MEMBERS if n in members] + sorted(n for n in members if n not in _FIRST_MEMBERS)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in order:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.create_system = 0
            info.external_attr = 0
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, members[name], compresslevel=6)
    return out.getvalue()
