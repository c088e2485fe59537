"""`harvey audit …`"""

from __future__ import annotations

import sys

import click

from harvey.cli._common import echo_json, friendly_errors


@click.group("audit")
def audit() -> None:
    """The tamper-evident audit trail (`run_audit`, hash-chained per tenant)."""


@audit.command("show")
@click.argument("run_id")
@click.option("--tenant", "tenant_name", required=True, help="Tenant that owns the run.")
@friendly_errors
def show(run_id: str, tenant_name: str) -> None:
    """Print one run's audit row as JSON (faithfulness report, sources used, trace…)."""
    from harvey.store import audit as trail
    from harvey.store import tenants

    row = trail.get(tenants.by_name(tenant_name).id, run_id)
    if row is None:
        raise click.ClickException(f"no run {run_id} for tenant {tenant_name}")
    echo_json(row)


@audit.command("verify")
@click.option("--tenant", "tenant_name", help="Tenant to verify.")
@click.option("--all", "all_tenants", is_flag=True, help="Verify every tenant.")
@click.option(
    "--anchor",
    "anchor_texts",
    multiple=True,
    metavar="SEQ:HASH",
    help="A chain head kept outside the database: audit_seq and audit_row_hash from a "
    "com.harvey.document.generated event or log line. Repeatable. Catches deletion of rows up to it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly_errors
def verify(tenant_name: str | None, all_tenants: bool, anchor_texts: tuple[str, ...], as_json: bool) -> None:
    """Recompute the hash chain; exit 1 and list every altered, missing or re-linked row, and every
    --anchor whose row is gone or differs."""
    from harvey.store import audit as trail
    from harvey.store import db, tenants

    if bool(tenant_name) == all_tenants:
        raise click.UsageError("give exactly one of --tenant NAME or --all")
    if anchor_texts and all_tenants:
        raise click.UsageError("--anchor belongs to one tenant's chain: use it with --tenant")
    try:
        anchors = [trail.Anchor.parse(text) for text in anchor_texts]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--anchor'") from exc
    if all_tenants:
        targets = [(r["name"], str(r["id"])) for r in db.query("SELECT id, name FROM tenants ORDER BY name")]
    else:
        assert tenant_name is not None
        targets = [(tenant_name, tenants.by_name(tenant_name).id)]
    reports = {name: trail.verify(tenant_id, anchors=anchors) for name, tenant_id in targets}
    if as_json:
        echo_json(
            {
                name: {
                    "ok": r.ok,
                    "rows_checked": r.rows_checked,
                    "problems": r.problems,
                    "unverifiable_anchors": r.unverifiable,
                }
                for name, r in reports.items()
            }
        )
    else:
        for name, report in reports.items():
            state = "OK" if report.ok else f"BROKEN ({len(report.problems)} problems)"
            click.echo(f"{name}: {report.rows_checked} rows checked, chain {state}")
            for problem in report.problems:
                click.echo(f"  {problem}")
            for old in report.unverifiable:
                click.echo(
                    f"  anchor {old['anchor_seq']} predates the retention checkpoint "
                    f"(seq {old['checkpoint_seq']}): its row was pruned, nothing to compare"
                )
    if not all(r.ok for r in reports.values()):
        sys.exit(1)
