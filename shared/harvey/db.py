"""PostgreSQL access through pg8000, with versioned migrations.

One connection per thread (functions-framework serves requests on a thread pool);
a broken connection is dropped and reopened on the next call. Every statement is
parameterised: callers pass values as keyword arguments, never in the SQL text.
"""

from __future__ import annotations

import json
import threading
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from harvey.config import get_settings

DEFAULT_TEST_URL = "postgresql://postgres@127.0.0.1:5432/test"


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached; the caller should answer 503 and retry later."""


_local = threading.local()
_embedded_lock = threading.Lock()
_embedded_url: str | None = None


def database_url() -> str:
    """DATABASE_URL, or an embedded server under HARVEY_HOME started on first use."""
    url = get_settings().database_url
    return url if url else _start_embedded()


def _start_embedded() -> str:
    global _embedded_url
    with _embedded_lock:
        if _embedded_url is None:
            try:
                import pgserver
            except ImportError as exc:  # the image installs no demo extra
                raise DatabaseUnavailable("DATABASE_URL is not set and pgserver is not installed") from exc
            home = get_settings().home.resolve() / "pg"
            home.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():  # platformdirs complains when XDG_RUNTIME_DIR is unset
                warnings.simplefilter("ignore")
                _embedded_url = pgserver.get_server(str(home), cleanup_mode=None).get_uri()
        return _embedded_url


def connect_params(url: str) -> dict[str, Any]:
    """Turn a postgresql:// URL (TCP or ?host=/socket/dir) into pg8000 keyword arguments."""
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    params: dict[str, Any] = {
        "user": unquote(parsed.username or "postgres"),
        "database": unquote(parsed.path.lstrip("/") or "postgres"),
        "timeout": get_settings().db_timeout_s,
    }
    if parsed.password:
        params["password"] = unquote(parsed.password)
    socket_dir = query.get("host", [None])[0]
    if socket_dir and socket_dir.startswith("/"):
        params["unix_sock"] = f"{socket_dir}/.s.PGSQL.{parsed.port or 5432}"
    else:
        params["host"] = parsed.hostname or "127.0.0.1"
        params["port"] = parsed.port or 5432
    return params


def _open():
    import pg8000.native

    try:
        return pg8000.native.Connection(**connect_params(database_url()))
    except (OSError, pg8000.native.InterfaceError) as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc


def connection():
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = _open()
    return con


def reset() -> None:
    """Forget this thread's connection (after an error, or when settings change)."""
    con = getattr(_local, "con", None)
    _local.con = None
    if con is not None:
        with suppress(Exception):  # already broken: nothing to save
            con.close()


def query(sql: str, **params: Any) -> list[dict[str, Any]]:
    """Run one statement and return rows as dicts."""
    import pg8000.native

    con = connection()
    try:
        rows = con.run(sql, **params)
    except (OSError, pg8000.native.InterfaceError) as exc:
        reset()
        raise DatabaseUnavailable(f"PostgreSQL connection lost: {exc}") from exc
    except pg8000.native.DatabaseError as exc:
        if _is_unavailable(exc):
            reset()
            raise DatabaseUnavailable(f"PostgreSQL is shutting down or unavailable: {exc}") from exc
        raise
    columns = [c["name"] for c in con.columns or []]
    return [dict(zip(columns, row, strict=True)) for row in rows or []]


def _is_unavailable(exc: Exception) -> bool:
    """Admin shutdown, crash recovery or a connection failure reported by the server (SQLSTATE 57P0x, 08xxx)."""
    details = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    code = str(details.get("C", ""))
    return code.startswith("57P") or code.startswith("08")


def one(sql: str, **params: Any) -> dict[str, Any] | None:
    rows = query(sql, **params)
    return rows[0] if rows else None


@contextmanager
def transaction() -> Iterator[None]:
    """BEGIN … COMMIT on this thread's connection; ROLLBACK on any error."""
    import pg8000.native

    query("BEGIN")
    try:
        yield
    except BaseException:
        try:
            connection().run("ROLLBACK")
        except (OSError, pg8000.native.InterfaceError):
            reset()
        raise
    query("COMMIT")


def jsonb(value: Any) -> str:
    """Serialise for a `CAST(:x AS jsonb)` parameter."""
    return json.dumps(value, ensure_ascii=False, default=str)


def is_uuid(value: object) -> bool:
    """Guard for ids taken from requests: a malformed one would otherwise fail the SQL cast."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def ping() -> None:
    query("SELECT 1")


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files("harvey") / "migrations"
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name.removesuffix(".sql"), p.read_text(encoding="utf-8")) for p in files]


def migrate() -> list[str]:
    """Apply pending migrations in order, all or nothing; return the versions applied.

    An advisory lock serialises concurrent callers (several pods starting at once).
    """
    query(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied: list[str] = []
    with transaction():
        query("SELECT pg_advisory_xact_lock(7331001)")
        done = {r["version"] for r in query("SELECT version FROM schema_migrations")}
        for version, sql in _migrations():
            if version in done:
                continue
            for statement in _split_sql(sql):
                query(statement)
            query("INSERT INTO schema_migrations (version) VALUES (:v)", v=version)
            applied.append(version)
    return applied


def status() -> dict[str, list[str]]:
    query(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    done = {r["version"] for r in query("SELECT version FROM schema_migrations")}
    known = [v for v, _ in _migrations()]
    return {"applied": [v for v in known if v in done], "pending": [v for v in known if v not in done]}


def _split_sql(sql: str) -> list[str]:
    """Split a migration file on semicolons at line ends (our migrations hold no functions)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";").strip()]
