"""`harvey openapi`: the functions' OpenAPI documents, as committed under docs/openapi/."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("openapi")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs/openapi"),
    show_default=True,
    help="Folder for <function>.json.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a committed document is out of date.")
def openapi(out: Path, check: bool) -> None:
    """Write (or check) one OpenAPI 3.1 document per function, generated from its routes and models."""
    from harvey import api
    from harvey.edge.openapi import document

    stale = []
    for name in api.FUNCTIONS:
        text = json.dumps(document(api.load(name)), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        path = out / f"{name}.json"
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {path}")
    if stale:
        raise click.ClickException(f"out of date (run `harvey openapi`): {', '.join(stale)}")
