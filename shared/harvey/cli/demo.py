"""`harvey demo`: the whole product on one machine, on embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from harvey.cli._common import friendly_errors, progress_bar

TENANT = "escritorio-demo"

DRAFTS: list[dict[str, Any]] = [
    {
        "doc_type": "peticao_inicial",
        "task": "Ação de indenização por danos morais e materiais contra banco por cobrança indevida de tarifa "
        "e inscrição indevida em cadastro de inadimplentes, com inversão do ônus da prova",
        "facts": "O autor, Carlos Alberto Pereira, CPF 123.456.789-09, e-mail carlos.pereira@example.com, "
        "telefone (11) 98765-4321, é correntista do Banco Exemplo S.A. Em março de 2026 foi cobrado por "
        "tarifa de pacote de serviços que nunca contratou e, após contestar a cobrança, teve o nome inscrito "
        "em cadastro de inadimplentes, o que lhe impediu de obter crédito.",
        "parties": {"autor": "Carlos Alberto Pereira", "réu": "Banco Exemplo S.A."},
    },
    {
        "doc_type": "parecer",
        "task": "Parecer sobre a responsabilidade do fornecedor por vício do produto durável e o prazo "
        "decadencial para o consumidor reclamar",
        "facts": "A consulente adquiriu uma geladeira que apresentou defeito após quarenta dias de uso; "
        "o fabricante recusa o reparo alegando que a garantia contratual não cobre o defeito.",
        "parties": {"consulente": "Comercial Aurora Ltda."},
    },
]


@click.command("demo")
@click.option(
    "--corpus",
    type=click.Path(path_type=Path, exists=True),
    default=Path("data/demo/corpus"),
    show_default=True,
    help="Folder or file to ingest.",
)
@friendly_errors
def demo(corpus: Path) -> None:
    """Ingest the demo corpus, create a tenant, draft a petição inicial and a parecer,
    and print each draft with its citations, reports, run_id and audit row."""
    from harvey.cli.generate import render
    from harvey.config import get_settings
    from harvey.drafting import runs
    from harvey.search.ingest import ingest, read_path
    from harvey.store import audit, db, tenants

    settings = get_settings()
    click.secho("== 1. Database", bold=True)
    where = "DATABASE_URL" if settings.database_url else f"embedded PostgreSQL under {settings.home}/pg"
    click.echo(f"using {where}")
    applied = db.migrate()
    click.echo(f"migrations applied: {', '.join(applied) or 'none pending'}")

    click.secho("== 2. Tenant", bold=True)
    try:
        owner, api_key = tenants.create(TENANT)
        click.echo(f"created tenant {TENANT}; API key (shown once): {api_key}")
    except tenants.TenantExists:
        owner = tenants.by_name(TENANT)
        click.echo(f"tenant {TENANT} already exists (rotate its key with `harvey tenant rotate-key {TENANT}`)")

    click.secho("== 3. Ingest", bold=True)
    docs = list(read_path(corpus))
    with progress_bar(len(docs), "doc", "ingest") as bar:
        result = ingest(owner.id, docs, progress=bar.update)
    click.echo(f"{len(docs)} documents: {result.as_dict()}")

    for number, job in enumerate(DRAFTS, 4):
        click.secho(f"== {number}. Generate: {job['doc_type']}", bold=True)
        run = runs.start_sync(owner, {**job, "user_id": "demo"}, None, origin="cli").model_dump(mode="json")
        click.echo(render(run))
        row = audit.get(owner.id, run["run_id"])
        assert row is not None
        click.secho("audit row:", bold=True)
        for key in (
            "run_id",
            "seq",
            "success",
            "model_used",
            "output_hash",
            "prev_hash",
            "row_hash",
            "execution_time_ms",
        ):
            click.echo(f"  {key}: {row[key]}")
        if run["document_md"]:
            from harvey.export import word

            path = settings.home / f"demo-{job['doc_type']}.docx"
            path.write_bytes(word.for_run(owner.id, run["run_id"]) or b"")
            click.echo(f"Word export: {path}")

    click.secho(f"== {len(DRAFTS) + 4}. Audit chain", bold=True)
    report = audit.verify(owner.id)
    click.echo(f"{report.rows_checked} rows checked, chain {'OK' if report.ok else 'BROKEN'}")

    click.secho(f"== {len(DRAFTS) + 5}. Feedback on the petição", bold=True)
    from harvey.cli._common import echo_json
    from harvey.store import feedback

    peticao = db.one(
        "SELECT run_id FROM run_audit WHERE tenant_id = CAST(:t AS uuid) AND doc_type = 'peticao_inicial' "
        "AND success ORDER BY seq DESC LIMIT 1",
        t=owner.id,
    )
    assert peticao is not None
    missing = {"raw": "CDC art. 42, parágrafo único", "class": "legislacao", "relevance_score": 0.8}
    stored = feedback.record(
        owner.id,
        {
            "run_id": str(peticao["run_id"]),
            "rating": 1,
            "user_id": "demo",
            "tags": ["demo"],
            "comment": "Boa base; citar também o art. 42 do CDC (repetição do indébito).",
            "missing_sources": [missing],
        },
    )
    click.echo(f"feedback {stored.id} recorded on run {peticao['run_id']}")
    echo_json(feedback.summary(owner.id, str(peticao["run_id"])))

    click.secho(f"== {len(DRAFTS) + 6}. Maintenance: retention and verify_audit", bold=True)
    from harvey.ops import tasks

    for task in ("retention", "verify_audit"):
        echo_json(tasks.run(task, tasks.Params()))
