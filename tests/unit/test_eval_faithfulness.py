"""`harvey eval faithfulness` and the metrics behind it, checked against hand-computed values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from harvey.evaluation.faithfulness import command, lexical_overlap
from harvey.evaluation.metrics import balanced_accuracy, roc_auc
from harvey.faithfulness import THRESHOLD

PAIRS = Path(__file__).parents[1] / "fixtures" / "faithfulness" / "pairs.jsonl"


def test_auc_against_hand_computed_values():
    # positives 0.9, 0.4; negatives 0.5, 0.1 -> pairs won: (0.9>0.5, 0.9>0.1, 0.4>0.1) = 3 of 4
    assert roc_auc([0.9, 0.5, 0.4, 0.1], [True, False, True, False]) == pytest.approx(0.75)
    # a tie between a positive and a negative counts half: (0.5 + 1) / 2
    assert roc_auc([0.7, 0.7, 0.9], [False, True, True]) == pytest.approx(0.75)
    assert roc_auc([0.5, 0.5, 0.2], [True, False, True]) == pytest.approx(0.25)


def test_auc_needs_both_classes():
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [True, True])


def test_balanced_accuracy_against_hand_computed_value():
    # positives 0.9, 0.4 at t=0.5 -> recall 1/2; negatives 0.5, 0.1, 0.2 -> 2/3 below; mean 7/12
    scores = [0.9, 0.4, 0.5, 0.1, 0.2]
    labels = [True, True, False, False, False]
    assert balanced_accuracy(scores, labels, 0.5) == pytest.approx(7 / 12)


def test_lexical_overlap_baseline():
    assert lexical_overlap("O prazo é curto", "o PRAZO não é longo") == pytest.approx(3 / 4)


def test_eval_command_json_on_fixture():
    result = CliRunner().invoke(command, ["--pairs", str(PAIRS), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 8 and report["supported"] == 4
    assert report["threshold"] == THRESHOLD
    # the fixture's unsupported claims change one fact of a near-verbatim restatement
    assert report["auc"] == 1.0
    assert report["balanced_accuracy"] == 1.0
    assert report["baseline_lexical_auc"] < report["auc"]


def test_eval_command_table_and_bad_label(tmp_path):
    table = CliRunner().invoke(command, ["--pairs", str(PAIRS)])
    assert table.exit_code == 0
    assert "AUC" in table.output and "lexical" in table.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "context": "c", "claim": "c", "label": "maybe"}) + "\n")
    result = CliRunner().invoke(command, ["--pairs", str(bad)])
    assert result.exit_code != 0 and "unknown label" in result.output
