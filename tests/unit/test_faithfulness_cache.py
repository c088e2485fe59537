"""The faithfulness screen's per-process caches: a warm cache gives the very same report as a cold one, in any
language and from any thread, and holds a bounded number of entries however many texts go through it."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from harvey import faithfulness
from harvey.drafting import prompts
from harvey.faithfulness import features

ROOT = Path(__file__).parents[2]
DRAFT = ROOT / "tests" / "fixtures" / "critique" / "demo_parecer_before.md"
CORPUS = ROOT / "data" / "demo" / "corpus" / "legislacao.jsonl"


def _clear() -> None:
    features._Text.of.cache_clear()
    features._Cited.of.cache_clear()


@pytest.fixture(scope="module")
def draft() -> tuple[str, dict[int, str]]:
    """The demo parecer with its eight sources: the CDC articles each "Conforme o CDC, art. N: … [n]" names."""
    law = {row["id"]: row["text"] for row in map(json.loads, CORPUS.read_text(encoding="utf-8").splitlines())}
    text = DRAFT.read_text(encoding="utf-8")
    cited = {
        int(n): law[f"CDC:art{article}"]
        for article, n in re.findall(r"^Conforme o CDC, art\. (\d+).*\[(\d)\]$", text, re.M)
    }
    assert sorted(cited) == list(range(1, 9))
    return prompts.claim_sections(text), cited


def _report(draft: tuple[str, dict[int, str]]) -> str:
    return json.dumps(faithfulness.assess(*draft), sort_keys=True)


def test_a_warm_cache_gives_the_report_of_a_cold_one(draft):
    _clear()
    cold = _report(draft)
    assert features._Text.of.cache_info().hits > 0  # the draft's sentences share their sources' windows
    prepared = features._Text.of.cache_info().currsize
    assert _report(draft) == cold
    assert features._Text.of.cache_info().currsize == prepared  # the second round prepared nothing new
    revised = (draft[0].replace("Trinta dias", "Sessenta dias"), draft[1])  # a revision round: one fact changed
    changed = _report(revised)
    _clear()
    assert _report(revised) == changed != cold


def test_the_same_text_is_prepared_apart_per_language(draft):
    """An English report first fills the cache with the same texts, stemmed in English: the Portuguese report
    must not read them."""
    _clear()
    portuguese = _report(draft)
    english = features._Text.of("Os fornecedores respondem solidariamente", "en")
    _clear()
    features._Text.of("Os fornecedores respondem solidariamente", "en")
    for window, _size in features._Cited.of(tuple(draft[1].values())).windows:
        features._Text.of(window, "en")
    assert _report(draft) == portuguese
    assert features._Text.of("Os fornecedores respondem solidariamente", "pt") != english


def test_concurrent_requests_share_the_cache_and_get_the_cold_report(draft):
    _clear()
    cold = _report(draft)
    _clear()
    with ThreadPoolExecutor(8) as pool:
        reports = list(pool.map(lambda _: _report(draft), range(16)))
    assert set(reports) == {cold}


def test_the_caches_are_bounded():
    assert features._Text.of.cache_info().maxsize == features.PREPARED_TEXTS
    assert features._Cited.of.cache_info().maxsize == features.CITED_SETS
    _clear()
    for i in range(features.PREPARED_TEXTS + 50):
        features._Text.of(f"O prazo é de {i} dias.", "pt")
    for i in range(features.CITED_SETS + 50):
        features._Cited.of((f"Art. {i}. O prazo é de {i} dias.",))
    assert features._Text.of.cache_info().currsize == features.PREPARED_TEXTS
    assert features._Cited.of.cache_info().currsize == features.CITED_SETS
    assert features._Text.of("O prazo é de 0 dias.", "pt").numbers == frozenset({0.0})  # evicted, prepared again
