"""Character error rate: how far extracted or OCR text is from the text a fixture was made from.

Levenshtein distance by Myers' bit-parallel algorithm (Hyyrö's formulation for the global distance):
Python's big integers hold a whole column, so a page against a page takes milliseconds, not the seconds
of the textbook table.
"""

from __future__ import annotations

import unicodedata


def normalized(text: str) -> str:
    """NFC with every run of whitespace one space: CER counts characters, not line breaks."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def levenshtein(a: str, b: str) -> int:
    if not a or not b:
        return len(a) + len(b)
    masks: dict[str, int] = {}
    for position, char in enumerate(a):
        masks[char] = masks.get(char, 0) | (1 << position)
    full, top = (1 << len(a)) - 1, 1 << (len(a) - 1)
    plus, minus, distance = full, 0, len(a)
    for char in b:
        equal = masks.get(char, 0)
        vertical = equal | minus
        horizontal = ((((equal & plus) + plus) & full) ^ plus) | equal
        up = minus | (~(horizontal | plus) & full)
        down = plus & horizontal
        if up & top:
            distance += 1
        elif down & top:
            distance -= 1
        up = ((up << 1) | 1) & full
        down = (down << 1) & full
        plus = down | (~(vertical | up) & full)
        minus = up & vertical
    return distance


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Edits to turn the hypothesis into the reference, per reference character (both normalized)."""
    reference, hypothesis = normalized(reference), normalized(hypothesis)
    return levenshtein(reference, hypothesis) / max(len(reference), 1)
