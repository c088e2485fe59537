"""`harvey tenant …`"""

from __future__ import annotations

from pathlib import Path

import click

from harvey.cli._common import echo_json, friendly_errors


@click.group("tenant")
def tenant() -> None:
    """Tenants (a firm or department), their API keys, feature flags and limits."""


@tenant.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help='Print {"tenant": NAME, "api_key": KEY}.')
@friendly_errors
def create(name: str, as_json: bool) -> None:
    """Create tenant NAME and print its API key — once: only a hash is stored."""
    from harvey.store import tenants

    created, api_key = tenants.create(name)
    if as_json:
        echo_json({"tenant": created.name, "api_key": api_key})
    else:
        click.echo(f"tenant {created.name} created (id {created.id})")
        click.echo(f"API key (shown once, store it now): {api_key}")


@tenant.command("rotate-key")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly_errors
def rotate_key(name: str, as_json: bool) -> None:
    """Revoke every key of NAME and print a new one (shown once)."""
    from harvey.store import tenants

    api_key = tenants.rotate_key(name)
    if as_json:
        echo_json({"tenant": name, "api_key": api_key})
    else:
        click.echo(f"new API key for {name} (old keys revoked): {api_key}")


@tenant.command("flags")
@click.argument("name")
@click.option(
    "--logs-only/--no-logs-only",
    default=None,
    help="Generate and audit drafts but withhold them from responses (SEV-1 containment).",
)
@click.option(
    "--force-fallback/--no-force-fallback",
    default=None,
    help="Skip the primary models and use the last model of HARVEY_LLM_MODELS.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly_errors
def flags(name: str, logs_only: bool | None, force_fallback: bool | None, as_json: bool) -> None:
    """Show or change NAME's feature flags; read on every request, no redeploy needed."""
    from harvey.store import tenants

    if logs_only is None and force_fallback is None:
        current = tenants.by_name(name)
    else:
        current = tenants.set_flags(name, logs_only=logs_only, force_fallback=force_fallback)
    if as_json:
        echo_json({"tenant": current.name, **current.flags})
    else:
        for flag, value in current.flags.items():
            click.echo(f"{flag}: {'on' if value else 'off'}")


@tenant.command("limits")
@click.argument("name")
@click.option(
    "--requests-per-minute",
    "rpm",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Requests NAME may make per minute (a burst of N, then N/60 per second); 0 removes the limit. "
    "Beyond it the API answers 429 with Retry-After.",
)
@click.option(
    "--monthly-budget-usd",
    "budget",
    type=click.FloatRange(min=0),
    default=None,
    metavar="X",
    help="Model spend per calendar month (UTC), summed from the audited runs' estimated cost; 0 removes "
    "it. Once reached, generation answers 402 until the month ends or the budget is raised.",
)
@click.option("--clear", is_flag=True, help="Remove both limits (unlimited).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly_errors
def limits(name: str, rpm: int | None, budget: float | None, clear: bool, as_json: bool) -> None:
    """Show or change NAME's rate limit and monthly budget; without options, print them.

    Applied from the next request, no redeploy needed:

        harvey tenant limits firma-x --requests-per-minute 60 --monthly-budget-usd 200
    """
    from harvey.store import audit, tenants

    if clear or rpm is not None or budget is not None:
        current = tenants.set_limits(
            name,
            requests_per_minute=rpm or None,
            monthly_budget_usd=budget or None,
            clear_rpm=clear or rpm == 0,
            clear_budget=clear or budget == 0,
        )
    else:
        current = tenants.by_name(name)
    spent = audit.month_cost(current.id)
    if as_json:
        echo_json(
            {
                "tenant": current.name,
                "requests_per_minute": current.requests_per_minute,
                "monthly_budget_usd": current.monthly_budget_usd,
                "spent_this_month_usd": round(spent, 6),
            }
        )
        return
    click.echo(f"requests_per_minute: {current.requests_per_minute or 'unlimited'}")
    budget_text = f"{current.monthly_budget_usd:.2f}" if current.monthly_budget_usd is not None else "unlimited"
    click.echo(f"monthly_budget_usd: {budget_text} (spent this month: {spent:.2f})")


@tenant.command("template")
@click.argument("name")
@click.option(
    "--docx",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The firm's letterhead (.docx); a paragraph reading {{ draft }} marks where the draft goes.",
)
@click.option("--clear", is_flag=True, help="Remove the letterhead (exports use the plain ABNT page).")
@friendly_errors
def template(name: str, path: Path | None, clear: bool) -> None:
    """Set the letterhead that NAME's Word exports are placed inside (checked by rendering a sample)."""
    from datetime import UTC, datetime

    from harvey.export.docx import ExportedDraft, render
    from harvey.store import templates, tenants

    owner = tenants.by_name(name)
    if clear == (path is not None):
        raise click.UsageError("give exactly one of --docx FILE or --clear")
    if path is None:
        removed = templates.remove(owner.id)
        click.echo(f"letterhead of {name} removed" if removed else f"{name} had no letterhead")
        return
    docx = path.read_bytes()
    sample = ExportedDraft(
        "00000000-0000-0000-0000-000000000000", "# Teste\n\nTexto [1].\n", "-", "0" * 64, "parecer", datetime.now(UTC)
    )
    render(sample, docx)  # InvalidTemplate (a clear message) before anything is stored
    digest = templates.put(owner.id, docx)
    click.echo(f"letterhead of {name} set ({len(docx)} bytes, sha256 {digest[:16]}…)")
