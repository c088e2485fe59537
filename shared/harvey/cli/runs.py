"""`harvey runs …`: stored runs, from the shell."""

from __future__ import annotations

from pathlib import Path

import click

from harvey.cli._common import friendly_errors


@click.group("runs")
def runs() -> None:
    """Stored runs (HTTP, event, streamed and CLI drafts alike)."""


@runs.command("export")
@click.argument("run_id")
@click.option("--tenant", "tenant_name", required=True, help="The run's tenant.")
@click.option("--docx", "path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@friendly_errors
def export(run_id: str, tenant_name: str, path: Path) -> None:
    """Write RUN_ID's draft as a Word document (in the tenant's letterhead when it has one)."""
    write_docx(tenant_name, run_id, path)


def write_docx(tenant_name: str, run_id: str, path: Path) -> None:
    from harvey.export import word
    from harvey.store import tenants

    docx = word.for_run(tenants.by_name(tenant_name).id, run_id)
    if docx is None:
        raise click.ClickException(f"tenant {tenant_name} has no run {run_id}")
    path.write_bytes(docx)
    click.echo(f"wrote {path} ({len(docx)} bytes)", err=True)
