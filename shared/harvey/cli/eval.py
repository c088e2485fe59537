"""`harvey eval …`: quality measured on external datasets (see ../shared/README.md formats)."""

from __future__ import annotations

import importlib

import click

_COMMANDS = {
    "retrieval": ("harvey.evaluation.retrieval", "Retrieval quality (nDCG@10, R@10, MRR@10) against BM25."),
    "faithfulness": ("harvey.evaluation.faithfulness", "Faithfulness checker AUC and balanced accuracy."),
    "pii": ("harvey.evaluation.pii", "CPF/CNPJ and person-name detection on CoNLL data."),
}


class _LazyEval(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        return importlib.import_module(_COMMANDS[name][0]).command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, _COMMANDS[name][1]) for name in self.list_commands(ctx)])


@click.group("eval", cls=_LazyEval)
def eval_group() -> None:
    """Evaluate Harvey's quality-critical parts on a dataset, with a baseline in the same run."""
