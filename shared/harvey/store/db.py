"""PostgreSQL access through pg8000: a bounded pool per process, versioned migrations.

functions-framework serves requests on a thread pool, so each process keeps a small
pool of connections (HARVEY_DB_POOL_SIZE, else THREADS plus the async workers). A
statement borrows a connection and gives it back; `transaction()` pins one to the
thread until COMMIT or ROLLBACK. A connection whose statement raised is only reused
after it is verified idle and in sync (a `SELECT 1` that answers 1); anything else —
an encoding error half-way through the protocol, a lost socket — discards it. Every
statement is parameterised: callers pass values as keyword arguments, never in the SQL.

A statement with parameters is prepared once per connection (a named server-side statement,
kept for the STATEMENTS_PER_CONNECTION most recently used SQL texts): later runs send one
Bind/Execute round trip instead of three, pg8000 does not re-parse the SQL text, and
PostgreSQL can reuse its plan. Prepared statements live in the connection's server session:
they survive ROLLBACK and go with a discarded connection. One rejected because the schema
changed under it (0A000) or gone from the session (26000) is prepared again, and outside a
transaction the statement is retried once (it did not run).

Errors leave this module in two kinds: DatabaseUnavailable (retry later: 503) and
QueryFailed (a bug or bad data: its message keeps the SQLSTATE and PostgreSQL's primary
message, redacted, never the detail or context lines, which quote row values).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from harvey import sockets
from harvey.config import get_settings, request_threads

log = logging.getLogger("harvey.store.db")
DEFAULT_TEST_URL = "postgresql://postgres@127.0.0.1:5432/test"
# SQLSTATE classes that mean "not now": 08 connection, 53 insufficient resources (too many
# clients), 57P0x shutdown / crash recovery / starting up, 57014 statement timeout.
_UNAVAILABLE = re.compile(r"^(08|53|57P0|57014)")
# SQLSTATEs of a prepared statement that has to be prepared again: a result type changed by a migration
# ("cached plan must not change result type") or a statement the session no longer has.
_STALE_STATEMENT = frozenset({"0A000", "26000"})
STATEMENTS_PER_CONNECTION = 128
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot serve us right now; the caller should answer 503 and retry later.

    The message is safe for clients: it never names the host, port or user.
    """


class QueryFailed(Exception):
    """PostgreSQL rejected a statement (a bug or bad data, not an outage)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"SQLSTATE {code}: {message}")
        self.code = code


_embedded_lock = threading.Lock()
_embedded_url: str | None = None
_local = threading.local()


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
    settings = get_settings()
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    params: dict[str, Any] = {
        "user": unquote(parsed.username or "postgres"),
        "database": unquote(parsed.path.lstrip("/") or "postgres"),
        "timeout": settings.db_timeout_s,
        "application_name": "harvey",
        "startup_params": {"statement_timeout": str(int(settings.db_statement_timeout_s * 1000))},
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


def _sqlstate(exc: BaseException) -> str:
    details = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return str(details.get("C", ""))


def _unavailable(exc: BaseException, what: str) -> DatabaseUnavailable:
    """A client-safe DatabaseUnavailable; the cause goes to the log (redacted), not to the message."""
    log.warning(
        "PostgreSQL unavailable",
        extra={"reason": what, "error_type": type(exc).__name__, "sqlstate": _sqlstate(exc) or None},
    )
    return DatabaseUnavailable(what)


class Connection:
    """A pg8000 connection and the statements prepared on it, most recently used last (they exist only in
    its server session, so they are kept and dropped with it)."""

    def __init__(self, raw: Any):
        self.raw = raw
        self.statements: OrderedDict[str, Any] = OrderedDict()

    def run(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Rows as dicts. pg8000's exceptions pass through (`_execute` sorts them)."""
        if not params:  # the simple query protocol: one round trip already, nothing to prepare
            rows, columns = self.raw.run(sql), self.raw.columns
        else:
            try:
                statement = self._prepared(sql)
                rows = statement.run(**params)
            except Exception as exc:
                if _sqlstate(exc) not in _STALE_STATEMENT:
                    raise
                self.statements.pop(sql, None)
                if self.raw._transaction_status != b"I":  # in an aborted transaction: the caller rolls back
                    raise
                statement = self._prepared(sql)
                rows = statement.run(**params)
            columns = statement.columns
        names = [c["name"] for c in columns or []]
        return [dict(zip(names, row, strict=True)) for row in rows or []]

    def _prepared(self, sql: str) -> Any:
        statement = self.statements.get(sql)
        if statement is not None:
            self.statements.move_to_end(sql)
            return statement
        if len(self.statements) >= STATEMENTS_PER_CONNECTION:
            _, evicted = self.statements.popitem(last=False)
            evicted.close()
        statement = self.statements[sql] = self.raw.prepare(sql)
        return statement

    def close(self) -> None:
        self.statements.clear()
        self.raw.close()


def _open() -> Connection:
    """A new connection on a socket whose timeouts the kernel keeps (harvey.sockets): pg8000's own timeout
    polls before every read and write."""
    import pg8000.native

    try:
        params = connect_params(database_url())
        seconds, unix = params.pop("timeout"), params.pop("unix_sock", None)
        if unix:
            sock = sockets.connect_unix(unix, seconds)
        else:
            sock = sockets.connect_tcp(params.pop("host"), params.pop("port"), seconds)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)  # as pg8000 does: a dead peer is noticed
        try:
            return Connection(pg8000.native.Connection(sock=sock, **params))
        except BaseException:
            sock.close()
            raise
    except (OSError, pg8000.native.InterfaceError) as exc:
        raise _unavailable(exc, "the database is unreachable right now") from None
    except pg8000.native.DatabaseError as exc:  # 57P03 starting up, 53300 too many clients, …
        if _UNAVAILABLE.match(_sqlstate(exc)):
            raise _unavailable(exc, "the database is not accepting connections (starting, stopping or full)") from None
        raise _failed(exc) from None
    except Exception as exc:  # noqa: BLE001 - a garbled or cut-off startup reply: no connection, retry later
        raise _unavailable(exc, "the database is unreachable right now") from None


def _failed(exc: BaseException) -> QueryFailed:
    from harvey.pii import redact_for_log

    details = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return QueryFailed(_sqlstate(exc) or "?????", redact_for_log(str(details.get("M", type(exc).__name__)))[:300])


def _pool_size() -> int:
    settings = get_settings()
    if settings.db_pool_size:
        return settings.db_pool_size
    return request_threads() + settings.async_workers


class Pool:
    """At most `size` connections; a caller waits `checkout_s` for one, then gets DatabaseUnavailable."""

    def __init__(self, url: str, size: int, checkout_s: float):
        self.url, self.size, self.checkout_s = url, size, checkout_s
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self.closed = False

    def acquire(self):
        if not self._slots.acquire(timeout=self.checkout_s):
            raise DatabaseUnavailable(f"all {self.size} database connections of this instance are busy")
        try:
            with self._lock:
                con = self._idle.pop() if self._idle else None
            return con if con is not None else _open()
        except BaseException:
            self._slots.release()
            raise

    def release(self, con, *, reusable: bool) -> None:
        try:
            if reusable and not self.closed:
                with self._lock:
                    self._idle.append(con)
            else:
                _close(con)
        finally:
            self._slots.release()

    def close(self) -> None:
        self.closed = True
        with self._lock:
            idle, self._idle = self._idle, []
        for con in idle:
            _close(con)


def _close(con) -> None:
    with suppress(Exception):  # already broken: nothing to save
        con.close()


_pool_lock = threading.Lock()
_pool: Pool | None = None


def pool() -> Pool:
    """This process's pool (re-made when DATABASE_URL changes, e.g. between tests)."""
    global _pool
    url = database_url()
    with _pool_lock:
        if _pool is None or _pool.url != url:
            if _pool is not None:
                _pool.close()
            _pool = Pool(url, _pool_size(), get_settings().db_checkout_timeout_s)
        return _pool


def reset() -> None:
    """Close the idle connections and forget the pool (after settings change)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
        _pool = None


def _in_sync(con) -> bool:
    """After a server-side error: roll back a failed transaction block, then prove the protocol is
    in step with a fresh random number (a stale reply from an earlier statement cannot match it)."""
    probe = secrets.randbelow(2**31)
    try:
        if con.raw._transaction_status != b"I":
            con.raw.run("ROLLBACK")
        return con.raw.run("SELECT CAST(:probe AS int)", probe=probe) == [[probe]]
    except Exception:  # noqa: BLE001 - any doubt discards the connection
        return False


def _execute(con: Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Run on `con`. Only QueryFailed leaves the protocol in step (PostgreSQL answered with an
    error); any other exception, such as a value pg8000 could not encode, may have left half a
    message on the socket."""
    import pg8000.native

    try:
        return con.run(sql, params)
    except (OSError, pg8000.native.InterfaceError) as exc:
        raise _unavailable(exc, "the database connection was lost") from None
    except pg8000.native.DatabaseError as exc:
        if _UNAVAILABLE.match(_sqlstate(exc)):
            raise _unavailable(exc, "the database is unavailable (shutting down, recovering or too slow)") from None
        raise _failed(exc) from None


def query(sql: str, **params: Any) -> list[dict[str, Any]]:
    """Run one statement and return rows as dicts (inside `transaction()`, on its connection)."""
    pinned = getattr(_local, "con", None)
    if pinned is not None:
        try:
            return _execute(pinned, sql, params)
        except QueryFailed:
            raise
        except BaseException:
            _local.dirty = True
            raise
    owner = pool()
    con = owner.acquire()
    reusable = False  # until proven: an interrupt anywhere below discards the connection
    try:
        rows = _execute(con, sql, params)
        reusable = True
        return rows
    except QueryFailed:
        reusable = _in_sync(con)
        raise
    finally:
        owner.release(con, reusable=reusable)


def one(sql: str, **params: Any) -> dict[str, Any] | None:
    rows = query(sql, **params)
    return rows[0] if rows else None


@contextmanager
def transaction() -> Iterator[None]:
    """BEGIN … COMMIT on one connection pinned to this thread; ROLLBACK on any error."""
    if getattr(_local, "con", None) is not None:
        raise RuntimeError("transactions do not nest")
    owner = pool()
    con = owner.acquire()
    _local.con, _local.dirty = con, False
    reusable = False  # until COMMIT or a verified ROLLBACK: an interrupt discards the connection
    try:
        query("BEGIN")
        yield
        query("COMMIT")
        reusable = True
    except Exception:
        reusable = not _local.dirty and _in_sync(con)
        raise
    finally:
        _local.con = None
        owner.release(con, reusable=reusable)


def jsonb(value: Any) -> str:
    """Serialise for a `CAST(:x AS jsonb)` parameter."""
    return json.dumps(value, ensure_ascii=False, default=str)


def is_uuid(value: object) -> bool:
    """Canonical 8-4-4-4-12 hex only: PostgreSQL's uuid cast and Python's UUID() disagree on the rest
    (`urn:uuid:…`, braces, no hyphens), so anything else is refused before it reaches SQL."""
    return isinstance(value, str) and _UUID.match(value) is not None


def ping() -> None:
    query("SELECT 1")


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files("harvey.store") / "migrations"
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
