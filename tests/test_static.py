"""`make lint` as part of the suite: the lint job is not the only thing that keeps types and style honest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "shared", "functions", "tests"],
        ["ruff", "format", "--check", "shared", "functions", "tests"],
        ["mypy", "--ignore-missing-imports", "--explicit-package-bases", "shared/harvey", "functions"],
    ],
    ids=["ruff", "ruff-format", "mypy"],
)
def test_static_checks_pass(command):
    env = {**os.environ, "MYPYPATH": "shared"}
    result = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
