"""`harvey maintenance …`: the maintenance function's tasks from the shell."""

from __future__ import annotations

import click

from harvey.cli._common import echo_json, friendly_errors

TASK_NAMES = (
    "retention",
    "reindex",
    "purge_document",
    "verify_audit",
    "golden_eval",
    "fail_stale_runs",
    "requeue_stale_documents",
)


@click.group("maintenance")
def maintenance() -> None:
    """Retention, reindex, document purge, audit verification and golden evaluation."""


@maintenance.command("run")
@click.argument("task", type=click.Choice(TASK_NAMES))
@click.option("--dry-run", is_flag=True, help="Report what would change without changing it.")
@click.option("--tenant", "tenant_name", help="Limit the task to one tenant (required by purge_document).")
@click.option("--document-id", help="Document to purge (purge_document).")
@click.option(
    "--budget",
    "budget_s",
    type=click.FloatRange(0, 3600, min_open=True),
    default=120.0,
    show_default=True,
    help="Seconds retention may spend; run again to continue.",
)
@friendly_errors
def run(task: str, dry_run: bool, tenant_name: str | None, document_id: str | None, budget_s: float) -> None:
    """Run TASK once and print its JSON result (the same as the function's)."""
    from harvey.ops import tasks

    _, params = tasks.params_from(
        {"task": task, "dry_run": dry_run, "tenant": tenant_name, "document_id": document_id, "budget_s": budget_s}
    )
    echo_json(tasks.run(task, params))


@maintenance.command("status")
@friendly_errors
def status() -> None:
    """Last success, last failure and last result of every task (as stored in PostgreSQL)."""
    from harvey.ops import tasks

    echo_json(tasks.status())


@maintenance.command("feedback-policy")
@click.argument("tenant_name")
@click.argument("policy", type=click.Choice(["delete_with_run", "keep"]))
@friendly_errors
def feedback_policy(tenant_name: str, policy: str) -> None:
    """Whether retention deletes a tenant's feedback with the run it is about, or keeps it."""
    from harvey.store import db, tenants

    tenant = tenants.by_name(tenant_name)
    db.query("UPDATE tenants SET feedback_retention = :p WHERE id = CAST(:t AS uuid)", p=policy, t=tenant.id)
    click.echo(f"{tenant_name}: feedback retention = {policy}")
