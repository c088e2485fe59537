"""Shared fixtures: a private Qdrant Edge folder per test session, and a private PostgreSQL database
for the tests that ask for one.

tests/unit needs no server; tests/integration talks to the real PostgreSQL and Redis of the machine
(DATABASE_URL / REDIS_URL, defaulting to the local services), each session in a database of its own,
so parallel sessions never see each other's rows; tests/deploy checks manifests, rules and images.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE_DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"


def _admin():
    import pg8000.native
    from harvey.store.db import connect_params

    return pg8000.native.Connection(**connect_params(BASE_DATABASE_URL))


@pytest.fixture(scope="session", autouse=True)
def harvey_home(tmp_path_factory):
    """Point every local store at a fresh, private place for this session; no database yet.

    Events are accepted unauthenticated (HARVEY_EVENTS_AUTH=none) so event tests can post them as
    before; tests/integration/test_event_auth.py switches to oidc and covers sender authentication.
    """
    home = tmp_path_factory.mktemp("harvey-home")
    os.environ.update(
        {
            "QDRANT_PATH": str(home / "qdrant"),
            "HARVEY_HOME": str(home),
            "HARVEY_LLM_MODELS": "harvey/extractive",
            "HARVEY_LLM_RETRIES": "0",
            "HARVEY_EVENTS_AUTH": "none",
        }
    )
    os.environ.pop("QDRANT_URL", None)
    os.environ.pop("K_SINK", None)
    from harvey.config import get_settings

    get_settings.cache_clear()
    return home


@pytest.fixture(scope="session")
def harvey_env(harvey_home):
    """A private PostgreSQL database for this session, migrated (opt-in: tests/integration asks for it)."""
    name = f"harvey_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = _admin()
    admin.run(f"CREATE DATABASE {name}")  # name built above from digits and hex only
    base = BASE_DATABASE_URL.rsplit("/", 1)[0]
    os.environ["DATABASE_URL"] = f"{base}/{name}"
    from harvey.config import get_settings
    from harvey.store import db

    get_settings.cache_clear()
    db.reset()
    db.migrate()
    yield os.environ["DATABASE_URL"]
    db.reset()
    admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.fixture
def settings_env(monkeypatch):
    """Set environment variables for one test and re-read settings before and after."""
    from harvey.config import get_settings

    def apply(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()

    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()


def _new_tenant(prefix: str = "firm"):
    from harvey.store import tenants

    return tenants.create(f"{prefix}-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def make_tenant(harvey_env):
    """Create tenants with unique names; returns (Tenant, api_key)."""
    return _new_tenant


DEMO_CORPUS = ROOT / "data" / "demo" / "corpus"


@pytest.fixture(scope="session")
def demo_docs():
    """A slice of the demo corpus: consumer law, civil liability and the initial petition."""
    from harvey.search.ingest import read_path

    wanted = {
        "CDC:art6",
        "CDC:art14",
        "CDC:art18",
        "CDC:art26",
        "CDC:art42",
        "CC:art186",
        "CC:art927",
        "CPC:art300",
        "CPC:art319",
        "CF88:art5",
    }
    docs = [d for d in read_path(DEMO_CORPUS / "legislacao.jsonl") if d.document_id in wanted]
    assert len(docs) == len(wanted)
    return docs


@pytest.fixture(scope="session")
def indexed_tenant(harvey_env, demo_docs):
    """A tenant with the demo slice indexed, shared by the session (embedding is the slow part):
    (Tenant, api_key). Tests that change its flags must restore them."""
    from harvey.search.ingest import ingest

    tenant, key = _new_tenant("indexed")
    ingest(tenant.id, demo_docs)
    return tenant, key


@pytest.fixture
def sink():
    """A local CloudEvents sink; point K_SINK at sink.url to capture what Harvey emits."""
    from harvey import events

    from tests.support.event_sink import Sink

    server = Sink()
    yield server
    events.drain()  # replies not read yet are this test's, not the next one's
    server.close()


@pytest.fixture
def private_pg(settings_env):
    """A throwaway PostgreSQL cluster that a test may stop, crash and restart (never the shared one).

    Its folder is outside pytest's 0700 tmp tree: as root, pgserver runs PostgreSQL and pg_ctl as the
    `pgserver` user, who must be able to reach the data directory."""
    import shutil
    import tempfile

    pgserver = pytest.importorskip("pgserver")
    from harvey.store import db

    home = Path(tempfile.mkdtemp(prefix="harvey-private-pg-"))
    home.chmod(0o755)
    server = pgserver.get_server(str(home / "pg"), cleanup_mode="delete")
    settings_env(DATABASE_URL=server.get_uri())
    db.reset()
    db.migrate()
    yield server
    db.reset()
    pg_ctl(server, "-w", "-m", "fast", "stop")  # the restarted postmaster is not the one pgserver tracks
    import psutil

    # pgserver then kills the postmaster it started, which a crash test already ended: that is not an error
    with contextlib.suppress(psutil.NoSuchProcess):
        server.cleanup()
    shutil.rmtree(home, ignore_errors=True)


def pg_ctl(server, *args: str) -> None:
    from pgserver._commands import pg_ctl as run

    run(list(args), pgdata=server.pgdata, user=server.system_user, timeout=60)
