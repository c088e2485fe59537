"""Intake parsing speed and quality → a markdown fragment on stdout.

Rows: text-PDF pages/s with pypdf and pypdfium2 side by side (text extraction alone, on a many-page PDF of
the CDC made like the fixtures, plus each library's CER on tests/fixtures/intake/text.pdf), harvey's whole
PDF parse, OCR pages/s, DOCX and HTML documents/s, and OCR CER on the scanned fixture. `--dpi` adds the
sweep behind harvey.intake.pdf.OCR_DPI: CER and seconds a page at each resolution, on the scanned fixture
and on a born-digital page forced through OCR. Medians of --runs repeated runs. Offline; needs tesseract
with its Portuguese model for the OCR rows, fpdf2 and ../shared/corpus for the many-page PDF (else the
two-page fixture is used).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "intake"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SWEEP_DPI = (100, 150, 200, 300)


def median_seconds(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def pypdf_pages(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]


def pypdfium2_pages(data: bytes) -> list[str]:
    import pypdfium2

    document = pypdfium2.PdfDocument(data)
    texts = []
    for index in range(len(document)):
        page = document[index]
        textpage = page.get_textpage()
        texts.append(textpage.get_text_range())
        textpage.close()
        page.close()
    document.close()
    return texts


def many_page_pdf(corpus: Path) -> bytes | None:
    """Every article of the CDC laid out as the text fixture is, about 40 pages; None without fpdf2 or corpus."""
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    if spec is None or spec.loader is None or not (corpus / "articles.jsonl").exists():
        return None
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    try:
        import fpdf  # noqa: F401 - only to know it is there
    except ImportError:
        return None
    import json

    with (corpus / "articles.jsonl").open(encoding="utf-8") as lines:
        ids = [row["id"] for row in map(json.loads, lines) if row["law"] == "CDC" and "#" not in row["id"]]
    articles = make.load_articles(corpus, set(ids))
    page = [("paragraph", part) for article in ids for part in articles[article]]
    return make.text_pdf([page])


def ocr_sweep(runs: int) -> list[str]:
    import pypdfium2
    from harvey.intake import pdf
    from harvey.intake.measure import character_error_rate
    from harvey.intake.ocr import read_image

    rows = []
    for name, reference in (("scanned", "scanned"), ("text", "text")):
        document = pypdfium2.PdfDocument((FIXTURES / f"{name}.pdf").read_bytes())
        page = document[0]
        known = (FIXTURES / f"{reference}.expected.txt").read_text(encoding="utf-8")
        if name == "text":
            known = known.split("CAPÍTULO III")[0]
        else:
            known = known[: known.index("TÍTULO III", 1)]  # page 1; page 2 is the same scan under a stamp
        for dpi in SWEEP_DPI:
            saved = pdf.OCR_DPI
            pdf.OCR_DPI = dpi
            image, used = pdf.render(page)
            pdf.OCR_DPI = saved
            found: list[str] = []
            seconds = median_seconds(
                lambda image=image, used=used, found=found: found.append(read_image(image, dpi=used, page=1)), runs
            )
            cer = character_error_rate(known, found[-1])
            label = "scanned fixture (200 DPI scan)" if name == "scanned" else "born-digital page, forced OCR"
            chosen = " ← OCR_DPI" if dpi == saved else ""
            rows.append(f"| {label} | {dpi}{chosen} | {100 * cer:.2f}% | {seconds:.2f} s |")
        page.close()
        document.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="repeated runs per measurement (median reported)")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "br-legal")
    parser.add_argument("--dpi", action="store_true", help="add the OCR resolution sweep (CER and time per DPI)")
    args = parser.parse_args()

    from harvey.intake import parse
    from harvey.intake.measure import character_error_rate
    from harvey.intake.ocr import OcrUnavailable, tesseract

    text_pdf = (FIXTURES / "text.pdf").read_bytes()
    known = (FIXTURES / "text.expected.txt").read_text(encoding="utf-8")
    big = many_page_pdf(args.corpus)
    sample, described = (big, "CDC, many pages") if big else (text_pdf, "text fixture")
    pages = len(pypdfium2_pages(sample))

    rows = []
    for library, extract in (("pypdf", pypdf_pages), ("pypdfium2", pypdfium2_pages)):
        seconds = median_seconds(lambda extract=extract: extract(sample), args.runs)
        cer = character_error_rate(known, "\n".join(extract(text_pdf)))
        rows.append(
            (
                f"text-PDF extraction, {library} ({described}, {pages} pages)",
                f"{pages / seconds:.0f} pages/s",
                f"CER {100 * cer:.2f}% on text.pdf",
            )
        )
    seconds = median_seconds(lambda: parse(sample, PDF), args.runs)
    rows.append(
        (f"text-PDF parse, harvey.intake (pypdfium2 + blocks, {pages} pages)", f"{pages / seconds:.0f} pages/s", "")
    )

    try:
        tesseract()
        scanned = (FIXTURES / "scanned.pdf").read_bytes()
        found = []
        seconds = median_seconds(lambda: found.append(parse(scanned, PDF)), max(1, args.runs // 2))
        document = found[-1]
        cer = character_error_rate((FIXTURES / "scanned.expected.txt").read_text(encoding="utf-8"), document.text)
        rows.append(
            (
                f"OCR, scanned PDF ({document.ocr_pages} pages, tesseract por, 1 thread)",
                f"{document.ocr_pages / seconds:.2f} pages/s",
                f"CER {100 * cer:.2f}%",
            )
        )
    except OcrUnavailable as missing:
        rows.append(("OCR, scanned PDF", "skipped", str(missing)))

    for label, name, content_type in (("DOCX", "brief.docx", DOCX), ("HTML", "page.html", "text/html")):
        data = (FIXTURES / name).read_bytes()
        seconds = median_seconds(lambda data=data, content_type=content_type: parse(data, content_type), args.runs * 20)
        rows.append((f"{label} parse ({name}, {len(data) // 1024} KB)", f"{1 / seconds:.0f} documents/s", ""))

    lines = [
        "## Intake parsing",
        "",
        f"Medians of {args.runs} runs.",
        "",
        "| measurement | result | quality |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {value} | {quality} |" for name, value, quality in rows]
    if args.dpi:
        lines += [
            "",
            "OCR resolution (page 1; CER against the known text):",
            "",
            "| page | DPI | CER | time a page |",
            "|---|---|---|---|",
        ]
        lines += ocr_sweep(max(1, args.runs // 2))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
