"""The one entry point: the declared content type picks the parser, once the bytes agree with it.

A client's Content-Type is a claim. `sniff` says what the first bytes are (WHATWG MIME sniffing's
signatures, and a ZIP's member list); a file declared as one supported type whose bytes are another is
refused rather than guessed, and bytes of a type intake does not read (an image, a legacy .doc) are
UnsupportedType whatever was declared.
"""

from __future__ import annotations

import io
import zipfile

from harvey.intake.document import ParsedDocument, UnreadableDocument, UnsupportedType

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
TEXT = "text/plain"
MARKDOWN = "text/markdown"
SUPPORTED_TYPES = (PDF, DOCX, HTML, TEXT, MARKDOWN)
NAMES = {PDF: "a PDF", DOCX: "a DOCX", HTML: "HTML", TEXT: "text", MARKDOWN: "Markdown"}

PDF_HEADER_WINDOW = 1024  # where Acrobat accepts the %PDF- header (PDF 1.7, annex H)
ZIP = b"PK\x03\x04"
SIGNATURES = (
    (b"%PDF-", PDF),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/msword"),  # OLE2: Word 97-2003 .doc (and .xls, .ppt)
    (b"{\\rtf", "application/rtf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
WORD_MAIN_PART = b"wordprocessingml.document.main+xml"
MAX_CONTENT_TYPES_BYTES = 1024 * 1024


def media_type(content_type: str) -> tuple[str, str | None]:
    """("type/subtype", charset or None) from a Content-Type header value."""
    essence, *parameters = (content_type or "").split(";")
    charset = None
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'")
    return essence.strip().lower(), charset


def sniff(data: bytes) -> str | None:
    """The type the bytes show, or None for bytes without a signature (text, HTML, Markdown look alike)."""
    for signature, found in SIGNATURES:
        if data.startswith(signature):
            return found
    if data.startswith(ZIP):
        return zip_kind(data) or "application/zip"
    return None


def zip_kind(data: bytes) -> str:
    """DOCX when the ZIP's content types declare a Word main document part (whatever its name), else
    "application/zip"; "" for a ZIP that cannot be opened (the DOCX parser then says why)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if "word/document.xml" in archive.namelist():
                return DOCX
            try:
                info = archive.getinfo("[Content_Types].xml")
            except KeyError:
                return "application/zip"
            declared = info.file_size <= MAX_CONTENT_TYPES_BYTES and WORD_MAIN_PART in archive.read(info)
            return DOCX if declared else "application/zip"
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, RuntimeError, NotImplementedError):
        return ""


def check_declared(data: bytes, declared: str) -> None:
    """Refuse bytes that are not what the client declared."""
    if declared == PDF and b"%PDF-" in data[:PDF_HEADER_WINDOW]:
        return
    if declared == DOCX and data.startswith(ZIP):
        if zip_kind(data) == "application/zip":
            raise UnreadableDocument("The file is a ZIP archive but not a Word document (.docx).")
        return
    found = sniff(data)
    if found == declared or (found is None and declared in (HTML, TEXT, MARKDOWN)):
        return
    if found in SUPPORTED_TYPES:
        raise UnreadableDocument(
            f"The file was sent as {declared} but its content is {NAMES[found]}; send it as {found}."
        )
    if found is not None:
        raise UnsupportedType(found)
    raise UnreadableDocument(f"The file was sent as {declared} but its content is not {NAMES[declared]}.")


def parse(data: bytes, content_type: str, *, ocr: bool = True) -> ParsedDocument:
    """Parse an uploaded file; UnsupportedType or UnreadableDocument say why not.

    `ocr=False` reads only PDF text layers: a scanned page then yields nothing.
    """
    declared, charset = media_type(content_type)
    if declared not in SUPPORTED_TYPES:
        raise UnsupportedType(declared)
    if not data:
        raise UnreadableDocument("The file is empty.")
    check_declared(data, declared)
    if declared == PDF:
        from harvey.intake.pdf import parse_pdf

        return parse_pdf(data, ocr=ocr)
    if declared == DOCX:
        from harvey.intake.word import parse_docx

        parsed = parse_docx(data)
    elif declared == HTML:
        from harvey.intake.webpage import parse_html

        parsed = parse_html(data, charset)
    elif declared == MARKDOWN:
        from harvey.intake.plaintext import parse_markdown

        parsed = parse_markdown(data, charset)
    else:
        from harvey.intake.plaintext import parse_text

        parsed = parse_text(data, charset)
    if not parsed.blocks:
        raise UnreadableDocument("No text found in the document.")
    return parsed
