"""`harvey eval faithfulness`: the checker's AUC and balanced accuracy on (context, claim) pairs.

Reads the `pairs.jsonl` format of ../shared/README.md and scores every pair with
`support_score(claim, [context])`, next to a lexical-overlap baseline computed in the same run so a
gain is measured, not assumed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from harvey.faith_metrics import balanced_accuracy, roc_auc


def lexical_overlap(claim: str, context: str) -> float:
    """Baseline: share of the claim's distinct folded words that also occur in the context."""
    from harvey.faith_text import tokens

    claim_words = set(tokens(claim))
    return len(claim_words & set(tokens(context))) / len(claim_words) if claim_words else 0.0


def read_pairs(path: Path) -> list[dict]:
    """Pairs with a boolean `supported`; any label other than supported/unsupported is an error."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row["label"] not in ("supported", "unsupported"):
            raise click.ClickException(f"{path}:{number}: unknown label {row['label']!r}")
        pairs.append({**row, "supported": row["label"] == "supported"})
    return pairs


def evaluate(pairs: list[dict], progress: bool = False) -> dict:
    """Checker and baseline metrics over the pairs, at the product's own THRESHOLD."""
    from tqdm import tqdm

    from harvey.faithfulness import THRESHOLD, support_score

    labels = [p["supported"] for p in pairs]
    scores = [
        support_score(p["claim"], [p["context"]])
        for p in tqdm(pairs, desc="faithfulness", disable=not progress, file=sys.stderr)
    ]
    baseline = [lexical_overlap(p["claim"], p["context"]) for p in pairs]
    return {
        "n": len(pairs),
        "supported": sum(labels),
        "threshold": THRESHOLD,
        "auc": round(roc_auc(scores, labels), 4),
        "balanced_accuracy": round(balanced_accuracy(scores, labels, THRESHOLD), 4),
        "baseline_lexical_auc": round(roc_auc(baseline, labels), 4),
    }


@click.command("faithfulness")
@click.option("--pairs", "pairs_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
def command(pairs_path: Path, as_json: bool) -> None:
    """Score each (context, claim) pair: AUC, balanced accuracy at THRESHOLD, lexical baseline."""
    pairs = read_pairs(pairs_path)
    result = evaluate(pairs, progress=len(pairs) > 50)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"pairs: {result['n']} ({result['supported']} supported)  threshold: {result['threshold']:.3f}")
    click.echo(f"{'metric':<28}{'checker':>10}{'lexical':>10}")
    click.echo(f"{'AUC':<28}{result['auc']:>10.3f}{result['baseline_lexical_auc']:>10.3f}")
    click.echo(f"{'balanced accuracy @ thresh.':<28}{result['balanced_accuracy']:>10.3f}{'':>10}")
