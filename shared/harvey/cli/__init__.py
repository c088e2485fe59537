"""The `harvey` command line.

Sub-command groups live in their own modules and are imported only when invoked,
so `harvey --help` stays fast.
"""

from __future__ import annotations

import importlib

import click

# name -> (module, attribute, one-line help)
_GROUPS: dict[str, tuple[str, str, str]] = {
    "db": ("harvey.cli.db", "db", "Database schema: migrations and status."),
    "tenant": ("harvey.cli.tenant", "tenant", "Create tenants, rotate API keys, set feature flags."),
    "ingest": (
        "harvey.cli.ingest",
        "ingest",
        "Index PDF, DOCX, HTML, .txt/.md files, folders of them and .jsonl records, here or through the API (--to).",
    ),
    "generate": (
        "harvey.cli.generate",
        "generate",
        "Draft a document with the same pipeline as the HTTP function.",
    ),
    "audit": ("harvey.cli.audit", "audit", "Inspect and verify the tamper-evident audit trail."),
    "eval": (
        "harvey.cli.eval",
        "eval_group",
        "Measure retrieval, faithfulness and PII detection on a dataset.",
    ),
    "demo": ("harvey.cli.demo", "demo", "Run the end-to-end demo on embedded defaults."),
    "maintenance": (
        "harvey.cli.maintenance",
        "maintenance",
        "Retention, reindex, purge, audit checks, golden eval.",
    ),
    "events": ("harvey.cli.events", "events", "Send CloudEvents the way a Knative broker would."),
    "golden": ("harvey.cli.golden", "golden", "Golden-dataset cases built from lawyers' feedback."),
    "feedback": ("harvey.cli.feedback", "feedback", "Record and summarise lawyers' feedback on runs."),
    "openapi": ("harvey.cli.openapi", "openapi", "Write each function's OpenAPI 3.1 document."),
    "runs": ("harvey.cli.runs", "runs", "Stored runs: export a draft to Word."),
    "review": ("harvey.cli.review", "review", "Signed links to a run's review page."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_GROUPS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _GROUPS:
            return None
        module, attribute, _ = _GROUPS[name]
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _GROUPS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="harvey")
def main() -> None:
    """Harvey drafts Brazilian legal documents grounded in your own corpus.

    Configuration comes from the environment (see the README's table); with nothing
    set, Harvey runs on embedded defaults under ./.harvey/.
    """
