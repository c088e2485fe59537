"""`harvey ingest PATH --tenant NAME`"""

from __future__ import annotations

from pathlib import Path

import click

from harvey.cli._common import echo_json, friendly_errors, progress_bar


@click.command("ingest")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--tenant", "tenant_name", required=True, help="Tenant that owns the documents.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@friendly_errors
def ingest(path: Path, tenant_name: str, as_json: bool) -> None:
    """Index PATH for a tenant: a .jsonl of {"id", "text"[, "title", "metadata"]},
    .txt/.md files, or a folder of them.

    Re-ingesting unchanged content is a no-op; changed content replaces the old chunks.
    """
    from harvey.search.ingest import ingest as run_ingest
    from harvey.search.ingest import read_path
    from harvey.store import tenants

    owner = tenants.by_name(tenant_name)
    docs = list(read_path(path))
    with progress_bar(len(docs), "doc", "ingest") as bar:
        result = run_ingest(owner.id, docs, progress=bar.update)
    if as_json:
        echo_json(result.as_dict())
    else:
        click.echo(
            f"{len(docs)} documents: {result.added} added, {result.updated} updated, "
            f"{result.unchanged} unchanged; {result.chunks} chunks indexed"
        )
