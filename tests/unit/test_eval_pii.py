"""`harvey eval pii` on a hand-checked four-sentence CoNLL fixture (tests/fixtures/pii/tiny.conll).

Gold CPF/CNPJ, worked out by hand:
  1. "529.982.247-25"                valid CPF, one token                      -> gold, detected
  2. "11.222.333 / 0001-81"          valid CNPJ split over three tokens         -> gold, detected
  3. "5299 8224 725"                 valid CPF digits in a non-official layout  -> gold, missed
     "CPF:39053344705"               valid CPF glued to a word: not a number token, so not gold,
                                     but the detector flags it                  -> false positive
  4. CNJ number, "OAB/SP 123.456", CPF with a wrong check digit, and the TSE number
     "1314-55 . 2012 6 000000" whose first 11 digits pass the CPF check by chance but run on
     into more digits                                                          -> neither
So gold 3, predicted 3, correct 2: precision = recall = 2/3.
The baseline (formatted regex, no check digits) finds 1 and the invalid "529.982.247-26": P 1/2, R 1/3.
PESSOA gold: "João da Silva", "Maria Souza", "Pedro Alves" (3).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from harvey.cli import main
from harvey.evaluation import pii as eval_pii

FIXTURE = Path(__file__).parents[1] / "fixtures" / "pii" / "tiny.conll"


def test_reader_and_gold_construction():
    sentences = list(eval_pii.read_conll(FIXTURE))
    assert len(sentences) == 4
    assert sentences[1].tokens[4:7] == ("11.222.333", "/", "0001-81")
    golds = [eval_pii.gold_cpf_cnpj(s) for s in sentences]
    assert [[text for text in (s.text[a:b] for a, b, _ in g)] for s, g in zip(sentences, golds, strict=True)] == [
        ["529.982.247-25"],
        ["11.222.333 / 0001-81"],
        ["5299 8224 725"],
        [],
    ]
    assert [s.text[a:b] for s in sentences for a, b in sorted(eval_pii.person_spans(s))] == [
        "João da Silva",
        "Maria Souza",
        "Pedro Alves",
    ]


@pytest.fixture
def fake_names(monkeypatch):
    """Deterministic name spans, so the person scores can be checked by hand."""

    def find_names(text: str, **_: object) -> list[tuple[int, int]]:
        spans = []
        for name in ("João da Silva", "Maria", "Processo", "Pedro Alves"):
            at = text.find(name)
            if at >= 0:
                spans.append((at, at + len(name)))
        return spans

    monkeypatch.setattr("harvey.pii.names.find_names", find_names)


def test_scores_by_hand(fake_names):
    result = eval_pii.evaluate(FIXTURE)
    assert result["sentences"] == 4
    assert result["cpf_cnpj"] == {
        "gold": 3,
        "predicted": 3,
        "correct": 2,
        "precision": 0.6667,
        "recall": 0.6667,
    }
    assert result["cpf_cnpj_precision"] == result["cpf_cnpj_recall"] == 0.6667
    # names: João da Silva and Pedro Alves exact, "Maria" is partial, "Processo" is spurious
    assert result["person"] == {
        "gold": 3,
        "predicted": 4,
        "correct": 2,
        "precision": 0.5,
        "recall": 0.6667,
        "f1": 0.5714,
    }
    assert result["baseline"]["cpf_cnpj"] == {
        "gold": 3,
        "predicted": 2,
        "correct": 1,
        "precision": 0.5,
        "recall": 0.3333,
    }


def test_command_json_and_table(fake_names):
    runner = CliRunner()
    out = runner.invoke(eval_pii.command, ["--conll", str(FIXTURE), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["person_f1"] == 0.5714
    table = runner.invoke(eval_pii.command, ["--conll", str(FIXTURE)])
    assert table.exit_code == 0, table.output
    assert "cpf_cnpj_recall" in table.output and "0.667" in table.output


def test_mounted_under_harvey_eval_with_the_real_model():
    out = CliRunner().invoke(main, ["eval", "pii", "--conll", str(FIXTURE), "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert result["cpf_cnpj_recall"] == 0.6667
    assert result["person"]["gold"] == 3 and result["person"]["correct"] >= 2


def test_no_gold_gives_no_score_rather_than_a_fake_one(tmp_path):
    path = tmp_path / "empty.conll"
    path.write_text("Sem O\nnúmeros O\n. O\n", encoding="utf-8")
    result = eval_pii.evaluate(path)
    assert result["cpf_cnpj_recall"] is None and result["cpf_cnpj_precision"] is None
    assert "n/a" in eval_pii.format_table(result)
