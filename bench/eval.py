"""`make eval`: run every `harvey eval` command on ../shared/eval and write bench/eval.md.

Each dataset is evaluated by the product's own command (`harvey eval … --json`), which computes
its baseline in the same run; this script only gathers the numbers into one table per part.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HARVEY = Path(sys.executable).parent / "harvey"
RETRIEVAL_SETS = ("retrieval-juristcu", "retrieval-oab")
FAITHFULNESS_SETS = ("faithfulness-oab", "faithfulness-faithbench")
RETRIEVAL_TARGET = 1.15
FAITHFULNESS_TARGETS = {
    "faithfulness-oab": ("auc", 0.80),
    "faithfulness-faithbench": ("balanced_accuracy", 0.56),
}


def harvey_json(*args: str) -> tuple[dict, float]:
    started = time.perf_counter()
    result = subprocess.run([str(HARVEY), *args, "--json"], cwd=ROOT, capture_output=True, text=True)  # noqa: S603
    if result.returncode != 0:
        raise SystemExit(f"harvey {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout), time.perf_counter() - started


def metric(block: dict, name: str) -> float:
    return block.get(name, block.get(f"{name}@10", 0.0))


def retrieval_section(eval_dir: Path) -> list[str]:
    lines = [
        "## Retrieval (nDCG@10 / R@10 / MRR@10, percent)",
        "",
        "| set | group | n | Harvey hybrid | BM25 baseline (same run) | nDCG ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name in RETRIEVAL_SETS:
        folder = eval_dir / name
        print(f"retrieval: {name}…", file=sys.stderr)
        result, seconds = harvey_json(
            "eval",
            "retrieval",
            "--corpus",
            str(folder / "corpus.csv"),
            "--queries",
            str(folder / "queries.csv"),
            "--qrels",
            str(folder / "qrels.csv"),
        )
        product, baseline = result["product"], result["bm25"]
        rows = [("all", product["overall"], baseline["overall"])]
        rows += [(g, product["groups"][g], baseline["groups"][g]) for g in sorted(product.get("groups", {}))]
        for group, ours, theirs in rows:
            ratio = metric(ours, "ndcg") / metric(theirs, "ndcg") if metric(theirs, "ndcg") else float("nan")
            mark = " ✅" if group == "all" and ratio >= RETRIEVAL_TARGET else ""
            lines.append(
                f"| {name} | {group} | {ours['n_queries']} | "
                f"{metric(ours, 'ndcg'):.1f} / {metric(ours, 'recall'):.1f} / {metric(ours, 'mrr'):.1f} | "
                f"{metric(theirs, 'ndcg'):.1f} / {metric(theirs, 'recall'):.1f} / {metric(theirs, 'mrr'):.1f} | "
                f"{ratio:.3f}×{mark} |"
            )
        lines.append(f"| {name} | (time) | | {seconds:.0f} s for indexing and both systems | | |")
    lines += ["", f"Target: nDCG@10 ≥ {RETRIEVAL_TARGET}× the BM25 baseline on both sets.", ""]
    return lines


def faithfulness_section(eval_dir: Path) -> list[str]:
    lines = [
        "## Faithfulness screen (lexical, for review)",
        "",
        "| set | n | AUC | balanced accuracy @ threshold | threshold | lexical-overlap AUC (same run) | target |",
        "|---|---|---|---|---|---|---|",
    ]
    cv: dict = {}
    for name in FAITHFULNESS_SETS:
        print(f"faithfulness: {name}…", file=sys.stderr)
        extra = ("--cv",) if name == "faithfulness-oab" else ()
        result, _ = harvey_json("eval", "faithfulness", "--pairs", str(eval_dir / name / "pairs.jsonl"), *extra)
        key, target = FAITHFULNESS_TARGETS[name]
        if "cv" in result:
            cv = result["cv"]
            value, auc = (
                cv["auc_mean"] if key == "auc" else cv[key],
                f"**{cv['auc_mean']:.3f} ± {cv['auc_sd']:.3f}** (nested CV by exam)",
            )
            balanced, lexical = cv["balanced_accuracy"], f"{cv['lexical_auc_mean']:.3f} ± {cv['lexical_auc_sd']:.3f}"
        else:
            value, auc = result[key], f"**{result['auc']:.3f}** (held out: never fitted on)"
            balanced, lexical = result["balanced_accuracy"], f"{result['baseline_lexical_auc']:.3f}"
        met = "✅" if value >= target else "❌"
        lines.append(
            f"| {name} | {result['n']} | {auc} | {balanced:.3f} | {result['threshold']:.4f} | {lexical} | "
            f"{key} ≥ {target} {met} |"
        )
        if "cv" in result:
            lines.append(
                f"| {name} (in-sample, for reference) | {result['n']} | {result['auc']:.3f} | "
                f"{result['balanced_accuracy']:.3f} | {result['threshold']:.4f} | "
                f"{result['baseline_lexical_auc']:.3f} | |"
            )
    effects = ", ".join(f"{n} {e['mean']:+.3f} ± {e['sd']:.3f}" for n, e in cv.get("veto_effects", {}).items())
    lines += [
        "",
        "The screen is fitted on faithfulness-oab, so the OAB headline is the nested cross-validation of the whole "
        "fitting procedure (`harvey eval faithfulness --cv`, `harvey.evaluation.fit_faithfulness`): outer folds "
        "hold out whole exams "
        "(exam = the id's first part, e.g. `2012-07`), training drops pairs sharing an article with the held-out "
        "exams, inner folds choose the feature set; mean ± standard deviation over "
        f"{cv.get('folds', 0)} folds (4 folds × 3 shuffles), lexical overlap on the same folds. The screen beats it "
        f"in {cv.get('folds_beating_lexical', 0)} of {cv.get('folds', 0)} folds "
        f"(fold AUCs {', '.join(f'{a:.2f}' for a in cv.get('fold_auc', []))}; "
        f"lexical {', '.join(f'{a:.2f}' for a in cv.get('fold_lexical_auc', []))}). "
        f"Feature sets chosen by the inner folds: {cv.get('chosen', {})}. The balanced accuracy is at the "
        "out-of-fold equal-error threshold, which is the shipped one.",
        f"Out-of-fold AUC effect of each veto (alone, against none): {effects}.",
        "FaithBench (CC BY-NC-SA 4.0) is read in place for evaluation only; nothing is fitted or chosen on it.",
        "",
    ]
    return lines


def pii_section(eval_dir: Path) -> list[str]:
    lines = [
        "## PII detection (LeNER-Br)",
        "",
        "| file | sentences | CPF/CNPJ gold | CPF/CNPJ precision / recall | PESSOA precision / recall / F1 |",
        "|---|---|---|---|---|",
    ]
    for split in ("dev.conll", "train.conll"):
        print(f"pii: {split}…", file=sys.stderr)
        result, _ = harvey_json("eval", "pii", "--conll", str(eval_dir / "pii-lener-br" / split))
        ids, person = result["cpf_cnpj"], result["person"]

        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.3f}"

        lines.append(
            f"| {split} | {result['sentences']} | {ids['gold']} | {fmt(ids['precision'])} / {fmt(ids['recall'])} | "
            f"{fmt(person['precision'])} / {fmt(person['recall'])} / {fmt(person['f1'])} |"
        )
    lines += [
        "",
        "The name model was trained on train.conll, so its train row is not a generalisation measure; "
        "dev.conll holds no CPF/CNPJ, so train is the real-data check for the number rules.",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "eval", help="../shared/eval")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "eval.md")
    parser.add_argument(
        "--only", choices=("retrieval", "faithfulness", "pii"), help="Rerun one part and replace its section in --out."
    )
    args = parser.parse_args()
    if not args.shared.is_dir():
        raise SystemExit(f"{args.shared} not found: pass --shared /path/to/shared/eval")
    if args.only:
        heading, section = {
            "retrieval": ("## Retrieval", retrieval_section),
            "faithfulness": ("## Faithfulness", faithfulness_section),
            "pii": ("## PII", pii_section),
        }[args.only]
        head, _, rest = args.out.read_text(encoding="utf-8").partition(heading)
        tail = rest[rest.index("\n## ") + 1 :] if "\n## " in rest else ""
        args.out.write_text(head + "\n".join(section(args.shared)) + "\n" + tail, encoding="utf-8")
        print(args.out.read_text(encoding="utf-8"))
        return
    lines = [
        "# Evaluation on the public dev sets",
        "",
        "Produced by `make eval` (`bench/eval.py`), which runs `harvey eval retrieval|faithfulness|pii --json` "
        "on `../shared/eval/`. Baselines are computed in the same run.",
        "",
    ]
    lines += retrieval_section(args.shared) + faithfulness_section(args.shared) + pii_section(args.shared)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(args.out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
