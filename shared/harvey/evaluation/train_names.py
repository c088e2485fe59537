"""Train the person-name CRF shipped as `harvey/models/names.crfsuite`, offline, from LeNER-Br.

    python -m harvey.evaluation.train_names --train ../shared/eval/pii-lener-br/train.conll \
        --out shared/harvey/models/names.crfsuite

All six LeNER-Br classes are learnt (organisations and places compete with people for capitalised
words, and knowing them sharpens PESSOA); only PESSOA is used at run time. L1 regularisation keeps
the model small by zeroing most feature weights.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from harvey.evaluation.pii import read_conll
from harvey.pii.names import features


def train(train_path: Path, out: Path, *, c1: float, c2: float, iterations: int) -> dict:
    import pycrfsuite  # type: ignore[import-untyped]

    trainer = pycrfsuite.Trainer(verbose=False)
    sentences = 0
    for sentence in read_conll(train_path):
        trainer.append(features(sentence.tokens), list(sentence.tags))
        sentences += 1
    trainer.set_params({"c1": c1, "c2": c2, "max_iterations": iterations, "feature.possible_transitions": True})
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    trainer.train(str(out))
    return {
        "sentences": sentences,
        "seconds": round(time.perf_counter() - started, 1),
        "bytes": out.stat().st_size,
    }


@click.command()
@click.option("--train", "train_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--c1", default=0.1, show_default=True, help="L1 penalty (sparsity, so model size).")
@click.option("--c2", default=0.01, show_default=True, help="L2 penalty.")
@click.option("--iterations", default=300, show_default=True)
def main(train_path: Path, out: Path, c1: float, c2: float, iterations: int) -> None:
    """Train the name CRF on a LeNER-Br CoNLL file and write the crfsuite model."""
    stats = train(train_path, out, c1=c1, c2=c2, iterations=iterations)
    click.echo(f"trained on {stats['sentences']} sentences in {stats['seconds']} s -> {out} ({stats['bytes']} bytes)")


if __name__ == "__main__":
    main()
