"""`harvey feedback …`: record and summarise lawyers' feedback from the shell."""

from __future__ import annotations

import json

import click

from harvey.cli._common import echo_json, friendly_errors


@click.group("feedback")
def feedback() -> None:
    """Lawyers' ratings and corrections of runs."""


@feedback.command("summary")
@click.argument("run_id")
@click.option("--tenant", "tenant_name", required=True, help="Tenant that owns the run.")
@friendly_errors
def summary(run_id: str, tenant_name: str) -> None:
    """Count, mean rating, error labels and missing sources of one run."""
    from harvey.store import feedback as library
    from harvey.store import tenants

    try:
        echo_json(library.summary(tenants.by_name(tenant_name).id, run_id))
    except library.RunNotFound as exc:
        raise click.ClickException(f"{exc} for tenant {tenant_name}") from exc


@feedback.command("analytics")
@click.option("--tenant", "tenant_name", required=True, help="Tenant to report on.")
@click.option("--since", help="ISO date or datetime (default: 30 days ago).")
@friendly_errors
def analytics(tenant_name: str, since: str | None) -> None:
    """Per doc type: counts, mean rating, top error labels, top missing sources."""
    from harvey.store import feedback as library
    from harvey.store import tenants

    echo_json(library.analytics(tenants.by_name(tenant_name).id, library.parse_since(since)))


@feedback.command("add")
@click.argument("run_id")
@click.option("--tenant", "tenant_name", required=True, help="Tenant that owns the run.")
@click.option(
    "--json",
    "body_json",
    required=True,
    help='The feedback body without run_id, e.g. \'{"rating": -1, "comment": "…"}\'.',
)
@friendly_errors
def add(run_id: str, tenant_name: str, body_json: str) -> None:
    """Record one feedback row, validated exactly as the feedback function does."""
    from harvey.store import feedback as library
    from harvey.store import tenants

    try:
        body = json.loads(body_json)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--json") from exc
    if not isinstance(body, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--json")
    try:
        stored = library.record(tenants.by_name(tenant_name).id, {**body, "run_id": run_id})
    except (library.RunNotFound, library.RunNotFinished) as exc:
        raise click.ClickException(str(exc)) from exc
    echo_json({"id": stored.id, "run_id": run_id})
