"""Person-name tagger: a linear-chain CRF (python-crfsuite) over hand-written, gazetteer-free features.

Trained offline on LeNER-Br by `harvey.evaluation.train_names`; the model ships in
`harvey/models/names.crfsuite` and is opened on first use, so nothing is downloaded and
`import harvey.pii` does not pay for it.  Tokenisation mimics LeNER-Br's (titles such as "Sr."
and initials such as "C." stay one token) so features at run time look like those seen in training.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MODEL_PATH = Path(__file__).parents[1] / "models" / "names.crfsuite"

# Only the abbreviations LeNER-Br keeps with their dot; it splits "Min", "Des", "Rel" from theirs.
_ABBREVIATIONS = ("sr", "dr", "ltda", "tel", "p", "v")
_TOKEN = re.compile(
    r"(?:https?://\S+|[\w.+-]+@[\w.-]+\w"  # links and e-mails stay whole
    r"|(?i:(?:" + "|".join(_ABBREVIATIONS) + r")\.)(?=\s|$)"  # "Sr.", "Ltda."
    r"|[A-Za-zÀ-ÿ]\.(?=\s)"  # initials: "José C. Ferreira"
    r"|\w+(?:(?:[-/'’]|(?<=\d)[.,](?=\d))\w+)*"  # words, 8ª, 1.775.000,00, autor/réu
    r"|``|''|\S)"
)
_PARTICLES = frozenset({"da", "de", "do", "das", "dos", "e", "d'", "del", "di", "van", "von"})


def tokenize(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _shape(word: str) -> str:
    shape = re.sub(r"[A-ZÀ-Ý]", "X", word)
    shape = re.sub(r"[a-zß-ÿ]", "x", shape)
    return re.sub(r"\d", "d", shape)


def _short_shape(word: str) -> str:
    return re.sub(r"(.)\1+", r"\1", _shape(word))


def _word_features(word: str) -> list[str]:
    """What a token says about itself and, prefixed with its offset, about its neighbours."""
    lower = word.lower()
    return [
        f"w={lower}",
        f"ss={_short_shape(word)}",
        f"title={word[:1].isupper() and word[1:].islower()}",
        f"upper={word.isupper()}",
        f"particle={lower in _PARTICLES}",
    ]


def features(tokens: Sequence[str]) -> list[list[str]]:
    """One feature list per token: the word's form and affixes, plus its ±2 neighbours.

    `caps` flags sentences written mostly in capitals (LeNER-Br headers, where every word looks
    like a name), so the model can weigh capitalisation differently there.
    """
    letters = [t for t in tokens if t[:1].isalpha()]
    caps = bool(letters) and sum(t.isupper() for t in letters) / len(letters) > 0.6
    own = [_word_features(word) for word in tokens]
    out = []
    for i, word in enumerate(tokens):
        lower = word.lower()
        f = [
            "bias",
            f"caps={caps}",
            f"shape={_shape(word)[:6]}",
            f"len={min(len(word), 8)}",
            f"p2={lower[:2]}",
            f"p3={lower[:3]}",
            f"s2={lower[-2:]}",
            f"s3={lower[-3:]}",
            f"s4={lower[-4:]}",
            f"digit={any(c.isdigit() for c in word)}",
            f"first={i == 0}",
            *own[i],
        ]
        for offset in (-2, -1, 1, 2):
            j = i + offset
            if 0 <= j < len(tokens):
                f += [f"{offset}:{x}" for x in own[j]]
            else:
                f.append(f"{offset}:edge")
        if 0 < i < len(tokens) - 1:
            f.append(f"-1|+1={tokens[i - 1].lower()}|{tokens[i + 1].lower()}")
        out.append(f)
    return out


def _segments(tokens: list[tuple[str, int, int]], text: str) -> list[list[tuple[str, int, int]]]:
    """Sentences, tagged one at a time so a name never runs across a full stop.

    A line break or "!"/"?" ends one; so does a lone "." unless it follows a short word, because
    LeNER-Br splits titles from their dot ("Min . Luiz Fux") and a name often comes next.
    """
    segments: list[list[tuple[str, int, int]]] = [[]]
    for k, tok in enumerate(tokens):
        if k and "\n" in text[tokens[k - 1][2] : tok[1]]:
            segments.append([])
        segments[-1].append(tok)
        if tok[0] in "!?" or (tok[0] == "." and k and len(tokens[k - 1][0]) > 3):
            segments.append([])
    return [s for s in segments if s]


def spans_from_tags(tags: Sequence[str], label: str = "PESSOA") -> list[tuple[int, int]]:
    """Token index spans [start, end) of `label` entities in an IOB2 sequence (a stray I- opens one)."""
    spans, start = [], None
    for i, tag in enumerate([*tags, "O"]):
        inside = tag == f"I-{label}" and start is not None
        if start is not None and not inside:
            spans.append((start, i))
            start = None
        if tag == f"B-{label}" or (tag == f"I-{label}" and start is None):
            start = i
    return spans


class _Tagger:
    """One opened model shared by the worker's threads; crfsuite taggers are not thread-safe."""

    def __init__(self, path: Path) -> None:
        import pycrfsuite  # type: ignore[import-untyped]

        self._tagger: Any = pycrfsuite.Tagger()
        self._tagger.open(str(path))
        self._lock = threading.Lock()

    def tag(self, tokens: Sequence[str]) -> list[str]:
        feats = features(tokens)
        with self._lock:
            return list(self._tagger.tag(feats))


_loaded: dict[Path, _Tagger] = {}
_load_lock = threading.Lock()


def _tagger(path: Path = MODEL_PATH) -> _Tagger:
    with _load_lock:
        if path not in _loaded:
            _loaded[path] = _Tagger(path)
        return _loaded[path]


def find_names(text: str, *, model: Path = MODEL_PATH) -> list[tuple[int, int]]:
    """Character spans of person names in `text`, sorted.

    A multi-word name the model tags once is taken everywhere it recurs verbatim in the text: the
    tagger can miss it in a weaker context (sentence start), and one leaked occurrence defeats
    redaction. Single words are not spread, so one wrong tag cannot blank a common word throughout.
    """
    tagger = _tagger(model)
    found: set[tuple[int, int]] = set()
    for segment in _segments(tokenize(text), text):
        tags = tagger.tag([t for t, _, _ in segment])
        found.update((segment[s][1], segment[e - 1][2]) for s, e in spans_from_tags(tags))
    for name in {text[s:e] for s, e in found if " " in text[s:e]}:
        for m in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", text):
            if not any(m.start() < e and s < m.end() for s, e in found):
                found.add(m.span())
    return sorted(found)
