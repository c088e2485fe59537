"""`harvey db …`"""

from __future__ import annotations

import click

from harvey.cli._common import echo_json, friendly_errors


@click.group("db")
def db() -> None:
    """Database schema: versioned migrations recorded in `schema_migrations`."""


@db.command("migrate")
@friendly_errors
def migrate() -> None:
    """Apply pending migrations (idempotent; safe to run from several pods at once)."""
    from harvey.store import db as database

    applied = database.migrate()
    click.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly_errors
def status(as_json: bool) -> None:
    """List applied and pending migrations."""
    from harvey.store import db as database

    result = database.status()
    if as_json:
        echo_json(result)
        return
    click.echo(f"applied: {', '.join(result['applied']) or '-'}")
    click.echo(f"pending: {', '.join(result['pending']) or '-'}")
