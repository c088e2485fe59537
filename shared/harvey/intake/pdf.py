"""PDF: pypdfium2's text layer, and Tesseract for a page without a usable one.

pypdfium2 over pypdf: on the fixtures both get the text right, pypdfium2 many times faster (bench/intake.py),
and it renders the pages OCR needs. PDFium is not thread-safe, not even across documents, so every call
into it holds one process-wide lock; OCR runs outside the lock, in its own process. A page's text layer is
usable when it has at least MIN_USABLE_LETTERS letters, at most MAX_UNMAPPED_SHARE of its characters are
glyphs without Unicode (a broken font map), and it is not a scan under a stamp: an image covering half
the page with fewer than SCANNED_MAX_LETTERS letters over it, as e-court systems stamp scanned records.
"""

from __future__ import annotations

import math
import threading
import unicodedata

from harvey.intake.document import ParsedDocument, UnreadableDocument
from harvey.intake.lines import Outline, blocks_from_lines
from harvey.intake.ocr import pgm, read_image

MAX_PAGES = 2000
OCR_DPI = 200  # the knee of CER against time on the fixtures (bench/intake.py --dpi)
MAX_RENDER_PIXELS = 25_000_000  # A4 at 500 DPI: a poster-sized page is rendered at a lower resolution
MIN_USABLE_LETTERS = 32  # about one line; a scanned page's layer has none, a page of text 1,500 or more
MAX_UNMAPPED_SHARE = 0.1
SCANNED_IMAGE_SHARE = 0.5
SCANNED_MAX_LETTERS = 400
EOF_WINDOW = 4096  # a complete PDF ends with %%EOF; Acrobat looks in the last 1,024 bytes, we allow more

TRUNCATED = "The PDF is truncated or corrupt; send the complete file."
PDFIUM = threading.Lock()


def parse_pdf(data: bytes, *, ocr: bool) -> ParsedDocument:
    if b"%%EOF" not in data[-EOF_WINDOW:]:
        raise UnreadableDocument(TRUNCATED)
    with PDFIUM:
        document = open_document(data)
    try:
        with PDFIUM:
            pages = len(document)
        if pages == 0:
            raise UnreadableDocument("The PDF has no pages.")
        if pages > MAX_PAGES:
            raise UnreadableDocument(f"The PDF has {pages} pages, more than the limit of {MAX_PAGES}.")
        outline, blocks, ocr_pages = Outline(), [], 0
        for number in range(1, pages + 1):
            with PDFIUM:
                text, image, dpi = read_page(document, number - 1, ocr=ocr)
            if image is not None:
                read = read_image(image, dpi=dpi, page=number)
                if letters(read) > letters(text):
                    text, ocr_pages = read, ocr_pages + 1
            blocks += blocks_from_lines(text.splitlines(), number, outline, wrapped=True)
    finally:
        with PDFIUM:
            document.close()
    if not blocks:
        raise UnreadableDocument(
            "No text found in the PDF, not even by OCR."
            if ocr
            else "No text found in the PDF: it has no text layer and OCR was not run."
        )
    return ParsedDocument("pypdfium2+tesseract" if ocr_pages else "pypdfium2", pages, ocr_pages, blocks)


def open_document(data: bytes):
    import pypdfium2
    import pypdfium2.raw as pdfium_c

    try:
        return pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as error:
        code = getattr(error, "err_code", None)
        if code == pdfium_c.FPDF_ERR_PASSWORD:
            raise UnreadableDocument("The PDF is protected by a password; send it without one.") from None
        if code == pdfium_c.FPDF_ERR_SECURITY:
            raise UnreadableDocument("The PDF is encrypted with a scheme that cannot be opened.") from None
        raise UnreadableDocument(TRUNCATED) from None


def read_page(document, index: int, *, ocr: bool) -> tuple[str, bytes | None, int]:
    """The page's text layer, and its image as PGM (with its DPI) when the layer is not usable.

    Called under PDFIUM; every PDFium object is closed here, before the lock is let go, so no finalizer
    calls into PDFium later from another thread.
    """
    page = document[index]
    try:
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_range()
        finally:
            textpage.close()
        if not ocr or usable(text, image_share(page)):
            return text, None, 0
        image, dpi = render(page)
        return text, image, dpi
    finally:
        page.close()


def usable(text: str, image_share: float) -> bool:
    found = letters(text)
    visible = sum(not c.isspace() for c in text)
    unmapped = sum(unicodedata.category(c) in ("Co", "Cn", "Cs") or c == "\ufffd" for c in text)
    if found < MIN_USABLE_LETTERS or unmapped > MAX_UNMAPPED_SHARE * visible:
        return False
    return not (image_share >= SCANNED_IMAGE_SHARE and found < SCANNED_MAX_LETTERS)


def letters(text: str) -> int:
    return sum(c.isalpha() for c in text)


def image_share(page) -> float:
    """The share of the page that images cover (overlaps counted twice, so capped at 1)."""
    import pypdfium2.raw as pdfium_c

    width, height = page.get_size()
    if width <= 0 or height <= 0:
        return 0.0
    covered = 0.0
    for image in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=2):
        left, bottom, right, top = image.get_bounds()
        covered += max(0.0, min(right, width) - max(left, 0.0)) * max(0.0, min(top, height) - max(bottom, 0.0))
    return min(1.0, covered / (width * height))


def render(page) -> tuple[bytes, int]:
    """The page in grey at OCR_DPI, lower for a page so large it would pass MAX_RENDER_PIXELS."""
    width, height = page.get_size()
    scale = OCR_DPI / 72
    pixels = width * scale * height * scale
    if pixels > MAX_RENDER_PIXELS:
        scale *= math.sqrt(MAX_RENDER_PIXELS / pixels)
    bitmap = page.render(scale=scale, grayscale=True)
    try:
        rows, row_bytes, stride = bitmap.height, bitmap.width, bitmap.stride
        buffer = bytes(bitmap.buffer)
    finally:
        bitmap.close()
    if stride != row_bytes:
        buffer = b"".join(buffer[row * stride : row * stride + row_bytes] for row in range(rows))
    return pgm(row_bytes, rows, buffer), max(1, round(scale * 72))
