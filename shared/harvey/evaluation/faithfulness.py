"""`harvey eval faithfulness`: the checker's AUC and balanced accuracy on (context, claim) pairs.

Reads the `pairs.jsonl` format of ../shared/README.md and scores every pair with
`support_score(claim, [context])`, next to a lexical-overlap baseline computed in the same run so a
gain is measured, not assumed. The shipped screen is fitted on faithfulness-oab, so on that set this
score is in-sample: `--cv` adds the exam-grouped nested cross-validation of the fitting procedure
(`fit_faithfulness.nested_cv`), the estimate to quote. `--judge MODEL` also asks that judge model for every
pair (`harvey.drafting.judge`, over HARVEY_LLM_API_BASE like the drafting models); a pair it fails on keeps
the screen's verdict and is counted in `judge.failed`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from harvey.evaluation.metrics import balanced_accuracy, roc_auc


def lexical_overlap(claim: str, context: str) -> float:
    """Baseline: share of the claim's distinct folded words that also occur in the context."""
    from harvey.faithfulness.text import tokens

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


def judge_metrics(pairs: list[dict], screen: list[float], model: str, progress: bool = False) -> dict:
    """The judge's verdicts as scores 1/0 (the screen's verdict where the judge failed): AUC and balanced accuracy."""
    from tqdm import tqdm

    from harvey.config import get_settings
    from harvey.drafting import llm
    from harvey.drafting.judge import JudgeError, judge
    from harvey.faithfulness import THRESHOLD

    llm.load()
    verdicts: list[float] = []
    failed = 0
    for pair, fallback in zip(tqdm(pairs, desc="judge", disable=not progress, file=sys.stderr), screen, strict=True):
        try:
            # one budget per pair, as one report has: a failed pair does not silence the judge for the rest
            budget = llm.Budget.start(get_settings().judge_deadline_s)
            verdicts.append(float(judge(pair["claim"], [pair["context"]], model, budget).supported))
        except JudgeError:
            failed += 1
            verdicts.append(float(fallback >= THRESHOLD))
    labels = [p["supported"] for p in pairs]
    return {
        "model": model,
        "answered": len(pairs) - failed,
        "failed": failed,
        "auc": round(roc_auc(verdicts, labels), 4),
        "balanced_accuracy": round(balanced_accuracy(verdicts, labels, 0.5), 4),
    }


def evaluate(pairs: list[dict], progress: bool = False, cv: bool = False, judge: str | None = None) -> dict:
    """Checker and baseline metrics over the pairs, at the product's own THRESHOLD; with `cv` the
    nested cross-validation of the fit, with `judge` the judge model's verdicts."""
    from tqdm import tqdm

    from harvey.faithfulness import THRESHOLD, support_score

    labels = [p["supported"] for p in pairs]
    scores = [
        support_score(p["claim"], [p["context"]])
        for p in tqdm(pairs, desc="faithfulness", disable=not progress, file=sys.stderr)
    ]
    baseline = [lexical_overlap(p["claim"], p["context"]) for p in pairs]
    result = {
        "n": len(pairs),
        "supported": sum(labels),
        "threshold": THRESHOLD,
        "auc": round(roc_auc(scores, labels), 4),
        "balanced_accuracy": round(balanced_accuracy(scores, labels, THRESHOLD), 4),
        "baseline_lexical_auc": round(roc_auc(baseline, labels), 4),
    }
    if cv:
        from harvey.evaluation.fit_faithfulness import nested_cv, prepare

        result["cv"] = nested_cv(prepare(pairs))
    if judge:
        result["judge"] = judge_metrics(pairs, scores, judge, progress)
    return result


@click.command("faithfulness")
@click.option("--pairs", "pairs_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
@click.option(
    "--cv", is_flag=True, help="Add the exam-grouped nested cross-validation of the fit (pairs with OAB ids)."
)
@click.option("--judge", "judge_model", metavar="MODEL", help="Also score every pair with this litellm judge model.")
def command(pairs_path: Path, as_json: bool, cv: bool, judge_model: str | None) -> None:
    """Score each (context, claim) pair: AUC, balanced accuracy at THRESHOLD, lexical baseline."""
    pairs = read_pairs(pairs_path)
    result = evaluate(pairs, progress=len(pairs) > 50, cv=cv, judge=judge_model)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"pairs: {result['n']} ({result['supported']} supported)  threshold: {result['threshold']:.3f}")
    click.echo(f"{'metric':<28}{'checker':>10}{'lexical':>10}")
    click.echo(f"{'AUC (in-sample on OAB)':<28}{result['auc']:>10.3f}{result['baseline_lexical_auc']:>10.3f}")
    click.echo(f"{'balanced accuracy @ thresh.':<28}{result['balanced_accuracy']:>10.3f}{'':>10}")
    if cv:
        c = result["cv"]
        click.echo(
            f"{'AUC, nested CV by exam':<28}{c['auc_mean']:>10.3f}{c['lexical_auc_mean']:>10.3f}  "
            f"(± {c['auc_sd']:.3f}; beats lexical in {c['folds_beating_lexical']}/{c['folds']} folds)"
        )
    if judge_model:
        j = result["judge"]
        click.echo(
            f"judge {j['model']}: AUC {j['auc']:.3f}, balanced accuracy {j['balanced_accuracy']:.3f}, "
            f"answered {j['answered']}, failed {j['failed']} (screen verdict kept)"
        )
