"""`harvey review …`: signed links to the review page."""

from __future__ import annotations

import click

from harvey.cli._common import echo_json, friendly_errors


@click.group("review")
def review() -> None:
    """Review links: a lawyer reads a draft in the browser and marks it; the marks become feedback."""


@review.command("link")
@click.argument("run_id")
@click.option("--tenant", "tenant_name", required=True, help="The run's tenant.")
@click.option("--ttl", default="7d", show_default=True, help="How long the link works: 7d, 12h, 30m or seconds.")
@click.option("--json", "as_json", is_flag=True, help='Print {"review_url": …, "expires_in_s": …}.')
@friendly_errors
def link(run_id: str, tenant_name: str, ttl: str, as_json: bool) -> None:
    """Mint a review link for RUN_ID (needs HARVEY_REVIEW_SECRET, like the functions)."""
    from harvey.drafting import runs
    from harvey.review.access import link
    from harvey.review.links import parse_ttl
    from harvey.store import tenants

    seconds = parse_ttl(ttl)
    owner = tenants.by_name(tenant_name)
    if runs.get(owner.id, run_id) is None:
        raise click.ClickException(f"tenant {tenant_name} has no run {run_id}")
    url = link(owner.id, run_id, ttl_s=seconds)
    if url is None:
        raise click.ClickException("HARVEY_REVIEW_SECRET is not set: no link can be signed")
    echo_json({"review_url": url, "expires_in_s": seconds}) if as_json else click.echo(url)
