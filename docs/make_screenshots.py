"""Regenerates the pictures under docs/ that show what a lawyer gets.

export-peticao-page1.png: page 1 of the demo petição (tests/fixtures/export/peticao_inicial.json, as
`harvey generate --json` drafted it) exported to Word by harvey.export.docx, turned into PDF by LibreOffice
headless and into PNG by pdftoppm at 80 dpi. Needs soffice and pdftoppm (`make tools`).

    .venv/bin/python docs/make_screenshots.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from harvey.export.docx import ExportedDraft, render

ROOT = Path(__file__).resolve().parents[1]
DEMO_PETICAO = ROOT / "tests" / "fixtures" / "export" / "peticao_inicial.json"


def page_one_png(docx: bytes, out: Path, dpi: int = 80) -> None:
    """Page 1 of the .docx as LibreOffice prints it, as a PNG (a private LibreOffice profile, so a running
    LibreOffice or a parallel run is not disturbed)."""
    soffice, pdftoppm = shutil.which("soffice"), shutil.which("pdftoppm")
    if soffice is None or pdftoppm is None:
        raise SystemExit("needs soffice (libreoffice-writer) and pdftoppm (poppler-utils): run `make tools`")
    with tempfile.TemporaryDirectory(prefix="harvey-shot-") as folder:
        work = Path(folder)
        (work / "draft.docx").write_bytes(docx)
        profile = (work / "profile").as_uri()
        subprocess.run(  # noqa: S603 - the installed LibreOffice and poppler, on our own temp files
            [soffice, f"-env:UserInstallation={profile}", "--headless", "--convert-to", "pdf", "--outdir", folder,
             str(work / "draft.docx")],
            check=True, capture_output=True, timeout=240,
        )  # fmt: skip
        subprocess.run(  # noqa: S603 - the installed LibreOffice and poppler, on our own temp files
            [pdftoppm, "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile", str(work / "draft.pdf"),
             str(work / "page")],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / "page.png", out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "export-peticao-page1.png")
    args = parser.parse_args()
    draft = ExportedDraft.from_run(json.loads(DEMO_PETICAO.read_text(encoding="utf-8")))
    page_one_png(render(draft), args.out)
    print(f"{args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
