"""`harvey tenant …`"""

from __future__ import annotations

import click

from harvey.cli._common import echo_json, friendly_errors


@click.group("tenant")
def tenant() -> None:
    """Tenants (a firm or department), their API keys and feature flags."""


@tenant.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help='Print {"tenant": NAME, "api_key": KEY}.')
@friendly_errors
def create(name: str, as_json: bool) -> None:
    """Create tenant NAME and print its API key — once: only a hash is stored."""
    from harvey import tenants

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
    from harvey import tenants

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
    from harvey import tenants

    if logs_only is None and force_fallback is None:
        current = tenants.by_name(name)
    else:
        current = tenants.set_flags(name, logs_only=logs_only, force_fallback=force_fallback)
    if as_json:
        echo_json({"tenant": current.name, **current.flags})
    else:
        for flag, value in current.flags.items():
            click.echo(f"{flag}: {'on' if value else 'off'}")
