"""Reading a page image with Tesseract's Portuguese model (Debian tesseract-ocr + tesseract-ocr-por).

The `tesseract` binary runs as a subprocess, the image on its stdin as PGM and the text on its stdout: no
temporary file, a hard timeout per page, and no Python binding to pin to the system's libtesseract.
OMP_THREAD_LIMIT=1 because a second thread bought no speed on these two cores (bench/intake.py) while
concurrent requests would each take two.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from harvey.intake.document import UnreadableDocument

LANGUAGE = "por"
OCR_PAGE_TIMEOUT_S = 60.0


class OcrUnavailable(RuntimeError):
    """Tesseract or its Portuguese model is missing: a fault of the deployment, not of the document."""


@functools.cache
def tesseract() -> str:
    """The binary's path, once it has shown it has the Portuguese model."""
    binary = shutil.which("tesseract")
    if binary is None:
        raise OcrUnavailable("the tesseract binary is not installed (Debian: tesseract-ocr tesseract-ocr-por)")
    listed = subprocess.run(  # noqa: S603 - the tesseract on PATH, fixed arguments
        [binary, "--list-langs"], capture_output=True, text=True, timeout=30, check=False
    )
    if LANGUAGE not in listed.stdout.split():
        raise OcrUnavailable(f"tesseract has no '{LANGUAGE}' model (Debian: tesseract-ocr-{LANGUAGE})")
    return binary


def pgm(width: int, height: int, pixels: bytes) -> bytes:
    """A binary greyscale PGM: the simplest image Tesseract (Leptonica) reads from stdin."""
    return b"P5\n%d %d\n255\n" % (width, height) + pixels


def read_image(image: bytes, *, dpi: int, page: int, timeout_s: float = OCR_PAGE_TIMEOUT_S) -> str:
    """The text Tesseract reads on one page image; a page it cannot finish in time makes the file unreadable."""
    command = [tesseract(), "stdin", "stdout", "-l", LANGUAGE, "--dpi", str(dpi)]
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments; the image goes in on stdin
            command,
            input=image,
            capture_output=True,
            timeout=timeout_s,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UnreadableDocument(f"Page {page} could not be read by OCR within {timeout_s:g} s.") from None
    if done.returncode != 0:
        raise UnreadableDocument(f"Page {page} could not be read by OCR (its image is not readable).")
    return done.stdout.decode("utf-8", errors="replace")
