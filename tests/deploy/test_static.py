"""`make lint` inside the suite: ruff and mypy must stay clean, not only in the CI lint job."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_lint_passes():
    result = subprocess.run(["make", "--no-print-directory", "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
