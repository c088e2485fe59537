"""Every integration test runs against the session's private PostgreSQL database."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _database(harvey_env):
    return harvey_env
