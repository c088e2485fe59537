"""`harvey golden …`: the golden dataset built from lawyers' corrections."""

from __future__ import annotations

import click

from harvey.cli._common import echo_json, friendly_errors


@click.group("golden")
def golden() -> None:
    """Golden-dataset cases: runs whose feedback carries an edited text or missing sources."""


@golden.command("add")
@click.option("--run", "run_id", required=True, help="Run whose feedback becomes a case.")
@click.option("--tenant", "tenant_name", required=True, help="Tenant that owns the run.")
@friendly_errors
def add(run_id: str, tenant_name: str) -> None:
    """Create (or refresh) the case for a run and print it."""
    from harvey.ops import golden as dataset
    from harvey.store import tenants

    echo_json(dataset.add(tenants.by_name(tenant_name), run_id))


@golden.command("list")
@click.option("--tenant", "tenant_name", help="Only this tenant's cases.")
@friendly_errors
def list_cases(tenant_name: str | None) -> None:
    """Print the cases (without their requests, which may hold personal data)."""
    from harvey.ops import golden as dataset
    from harvey.store import tenants

    tenant_id = tenants.by_name(tenant_name).id if tenant_name else None
    echo_json([{k: v for k, v in case.items() if k != "request"} for case in dataset.cases(tenant_id)])
