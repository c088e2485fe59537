"""Prepared statements per pooled connection, as PostgreSQL itself lists them (pg_prepared_statements): a
statement is prepared once per connection and then only executed, survives ROLLBACK, is bounded per connection,
goes with a discarded connection, is prepared again when a migration changes its result, and returns exactly
what pg8000's unnamed statements return."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from harvey.store import db

ECHO = (
    "SELECT CAST(:id AS uuid) AS id, CAST(:doc AS jsonb) AS doc, CAST(:at AS timestamptz) AS at, :nothing AS nothing, "
    "CAST(:amount AS numeric) AS amount, CAST(:flag AS boolean) AS flag, CAST(:tags AS text[]) AS tags, :text AS text"
)
VALUES = {
    "id": str(uuid.uuid4()),
    "doc": db.jsonb({"rating": -1, "spans": [{"start": 0, "end": 3}], "nome": "João"}),
    "at": datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
    "nothing": None,
    "amount": Decimal("1234.50"),
    "flag": True,
    "tags": ["consumidor", "cdc"],
    "text": "ação [1]; 'aspas' e \\ barra",
}


@pytest.fixture
def one_connection(settings_env):
    """A pool of one: every statement below runs on the same connection until it is discarded."""
    settings_env(HARVEY_DB_POOL_SIZE="1")
    db.reset()
    yield
    db.reset()


def _prepared() -> dict[str, dict]:
    """This connection's prepared statements by SQL text (as pg8000 sent it, with $n placeholders)."""
    rows = db.query("SELECT statement, generic_plans + custom_plans AS runs FROM pg_prepared_statements")
    return {row["statement"]: row for row in rows}


def _backend() -> int:
    return db.one("SELECT pg_backend_pid() AS pid")["pid"]


def test_a_statement_is_prepared_once_per_connection_and_then_only_executed(one_connection):
    for _ in range(7):
        assert db.one("SELECT CAST(:n AS int) + 1 AS m", n=41) == {"m": 42}
    (statement,) = (row for text, row in _prepared().items() if "+ 1 AS m" in text)
    assert statement["runs"] == 7


def test_results_are_those_of_pg8000_unnamed_statements(one_connection):
    import pg8000.native

    raw = pg8000.native.Connection(**db.connect_params(db.database_url()))
    try:
        rows = raw.run(ECHO, **VALUES)
        expected = [dict(zip([c["name"] for c in raw.columns], row, strict=True)) for row in rows]
    finally:
        raw.close()
    assert db.query(ECHO, **VALUES) == expected  # first run: prepared
    assert db.query(ECHO, **VALUES) == expected  # then executed by name
    assert expected[0]["doc"]["nome"] == "João" and expected[0]["tags"] == ["consumidor", "cdc"]
    assert db.query("SELECT 1 AS one WHERE CAST(:x AS int) = 2", x=1) == []


def test_prepared_statements_survive_a_rollback(one_connection):
    backend = _backend()
    with pytest.raises(db.QueryFailed), db.transaction():
        db.one("SELECT CAST(:n AS int) * 2 AS twice", n=2)  # prepared inside the transaction
        db.query("SELECT CAST(:v AS int)", v="not a number")
    assert _backend() == backend  # the connection was verified and kept
    assert db.one("SELECT CAST(:n AS int) * 2 AS twice", n=3) == {"twice": 6}
    (statement,) = (row for text, row in _prepared().items() if "* 2 AS twice" in text)
    assert statement["runs"] == 2  # executed again by name, not prepared a second time


def test_a_discarded_connection_takes_its_statements_with_it(one_connection):
    assert db.one("SELECT CAST(:n AS int) - 1 AS less", n=1) == {"less": 0}
    backend = _backend()
    with pytest.raises(Exception):  # noqa: B017 - a value pg8000 cannot encode: the connection is discarded
        db.query("SELECT CAST(:v AS text) AS v", v="\ud800")
    assert _backend() != backend
    assert not any("- 1 AS less" in text for text in _prepared())
    assert db.one("SELECT CAST(:n AS int) - 1 AS less", n=5) == {"less": 4}  # prepared anew on the new connection


def test_a_connection_keeps_a_bounded_number_of_statements(one_connection):
    for i in range(db.STATEMENTS_PER_CONNECTION + 20):
        assert db.one(f"SELECT CAST(:n AS int) + {i} AS m", n=0) == {"m": i}  # noqa: S608 - distinct test texts
    prepared = _prepared()
    assert len(prepared) == db.STATEMENTS_PER_CONNECTION  # the least recently used were deallocated
    assert not any(text.endswith("+ 0 AS m") for text in prepared)
    assert any(text.endswith(f"+ {db.STATEMENTS_PER_CONNECTION + 19} AS m") for text in prepared)


def test_a_statement_whose_result_a_migration_changed_is_prepared_again(one_connection):
    table = f"t_{uuid.uuid4().hex[:8]}"
    db.query(f"CREATE TABLE {table} (a int)")
    db.query(f"INSERT INTO {table} VALUES (1)")  # noqa: S608 - test table name
    select = f"SELECT * FROM {table} WHERE a = :a"  # noqa: S608
    assert db.query(select, a=1) == [{"a": 1}]
    db.query(f"ALTER TABLE {table} ADD COLUMN b text DEFAULT 'x'")
    assert db.query(select, a=1) == [{"a": 1, "b": "x"}]  # outside a transaction: prepared again and retried
    db.query(f"ALTER TABLE {table} ADD COLUMN c int DEFAULT 2")
    with pytest.raises(db.QueryFailed) as failed, db.transaction():
        db.query(select, a=1)  # inside one the transaction is already aborted: it fails once
    assert failed.value.code == "0A000"
    assert db.query(select, a=1) == [{"a": 1, "b": "x", "c": 2}]
    db.query(f"DROP TABLE {table}")
