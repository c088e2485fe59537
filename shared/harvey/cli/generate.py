"""`harvey generate …`: the HTTP function's pipeline, from the shell."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from harvey.cli._common import echo_json, friendly_errors
from harvey.drafting.prompts import DOC_TYPES
from harvey.search import vigencia


def render(result: dict[str, Any]) -> str:
    """A human-readable report of one run."""
    lines = [f"run_id: {result['run_id']}   model: {result['model_used']}   status: {result['status']}"]
    if result["fallbacks_tried"]:
        lines.append("fallbacks: " + "; ".join(f"{f['model']} ({f['error']})" for f in result["fallbacks_tried"]))
    lines.append("")
    lines.append(result["document_md"] or "(draft withheld: tenant is in logs-only mode)")
    changed = [c for c in result["citations"] if c.get("vigencia") not in (None, vigencia.VIGENTE)]
    if changed:
        lines.append("Vigência: " + "; ".join(f"[{c['n']}] {c['label']} — {vigencia.describe(c)}" for c in changed))
    report = result["faithfulness_report"]
    supported = sum(1 for s in report["sentences"] if s["supported"])
    cited = sum(1 for s in report["sentences"] if s["citations"])
    lines.append(
        f"Faithfulness: {report['score']:.2f} — {supported}/{cited} cited sentences supported, "
        f"{report.get('uncited_claims', 0)} uncited claims (threshold {report.get('threshold', 0):.2f})"
    )
    for sentence in report["sentences"]:
        flags = f" [{', '.join(sentence['flags'])}]" if sentence.get("flags") else ""
        if sentence["citations"] and not sentence["supported"]:
            lines.append(f"  unsupported ({sentence['support_score']:.2f}){flags}: {sentence['text'][:120]}")
        elif flags:
            lines.append(f"  supported, check{flags}: {sentence['text'][:120]}")
    quality = result["quality"]
    lines.append(
        "Quality: "
        + ", ".join(f"{k} {quality[k]:.2f}" for k in ("estrutura", "fundamentacao", "clareza", "completude"))
        + f" → {quality['overall']:.2f} ({quality['verdict']})"
    )
    lines.extend(f"  held back: {reason}" for reason in quality.get("blockers", []))
    pii = result["pii_report"]
    lines.append(
        f"PII: input {pii['input']['total']} {pii['input']['by_type']}, output {pii['output']['total']} "
        f"{pii['output']['by_type']}"
    )
    lines.append("Timings (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in result["timings_ms"].items()))
    return "\n".join(lines)


@click.command("generate")
@click.option("--tenant", "tenant_name", required=True, help="Tenant whose corpus grounds the draft.")
@click.option("--doc-type", type=click.Choice(sorted(DOC_TYPES)), required=True, help="Kind of document.")
@click.option("--task", required=True, help="What the document must achieve, in one or two sentences.")
@click.option("--facts", default="", help="The client's facts.")
@click.option("--party", "parties", multiple=True, metavar="ROLE=NAME", help="A party, e.g. autor='Maria Souza'.")
@click.option("--top-k", type=click.IntRange(1, 20), default=None, help="Sources to retrieve.")
@click.option("--json", "as_json", is_flag=True, help="Print the same JSON as the HTTP function.")
@click.option(
    "--docx", "docx_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the draft as Word here."
)
@friendly_errors
def generate(
    tenant_name: str,
    doc_type: str,
    task: str,
    facts: str,
    parties: tuple[str, ...],
    top_k: int | None,
    as_json: bool,
    docx_path: Path | None,
) -> None:
    """Draft a document grounded in the tenant's corpus: a run like an HTTP one (audited, with its row)."""
    from harvey.drafting import pipeline, runs
    from harvey.store import tenants

    parsed_parties = {}
    for item in parties:
        role, sep, name = item.partition("=")
        if not sep or not role.strip() or not name.strip():
            raise click.BadParameter(f"{item!r} is not ROLE=NAME", param_hint="--party")
        parsed_parties[role.strip()] = name.strip()
    owner = tenants.by_name(tenant_name)
    body: dict[str, Any] = {
        "doc_type": doc_type,
        "task": task,
        "facts": facts,
        "parties": parsed_parties,
        "user_id": "cli",
    }
    if top_k is not None:
        body["top_k"] = top_k
    try:
        result = runs.start_sync(owner, body, None, origin="cli").model_dump(mode="json")
    except pipeline.GenerationError as err:
        click.echo(f"Error: {err.message} (run_id {err.run_id}, audited)", err=True)
        sys.exit(1)
    echo_json(result) if as_json else click.echo(render(result))
    if docx_path is not None:
        from harvey.cli.runs import write_docx

        write_docx(tenant_name, result["run_id"], docx_path)
