"""Text plumbing for the faithfulness checker: sentence splitting, folding, stemming, numbers.

Kept apart from the scoring so the splitter (tuned for Brazilian legal prose, where "art.", "inc.",
"fls." and "1.234" are full stops that do not end a sentence) can be tested on its own.
"""

from __future__ import annotations

import re

from harvey.portuguese import fold, stemmer

# Abbreviations whose trailing period never ends a sentence (compared lower-cased, without the period).
_ABBREVIATIONS = frozenset(
    """
    art arts inc incs n nº no nos núm num sr sra srs sras srta dr dra drs dras exmo exma exmos exmas
    ilmo ilma mm fl fls p pp pág págs cf ex exa v vs vol vols ed eds al etc cap caps par parág obs
    ob cit op id ibid rel min des proc res dec emb rec agr resp ltda cia av al tel séc c.c c/c
    lei doc docs item i.e e.g prof profa sec ss seq mr mrs ms st jr
    """.split()
)

_BOUNDARY = re.compile(r"(?<=[.!?…])[\"'”»)*_]*\s+")
_LEADING_CITATIONS = re.compile(r"^((?:\[[^\]]*\d[^\]]*\]\s*)+)")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)]|[a-z][.)]|[IVXLC]{1,6}\s*[-–—.)])\s+")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)")


def clean_markdown(line: str) -> str:
    """Strip heading hashes, list markers and emphasis so only the prose is scored and reported."""
    line = _HEADING.sub("", line)
    line = _LIST_MARKER.sub("", line)
    return _EMPHASIS.sub("", line).strip()


def _ends_with_abbreviation(text: str) -> bool:
    stripped = text.rstrip("\"'”»)*_ \t")
    if not stripped.endswith("."):
        return False
    word = re.search(r"([\wº°ª/§.]+)\.$", stripped)
    if word is None:
        return False
    token = word.group(1).lower()
    if token in _ABBREVIATIONS or len(token) == 1 and token.isalpha():
        return True  # listed abbreviation or an initial ("J. Silva")
    return bool(re.fullmatch(r"(?:[a-z]\.)+[a-z]", token))  # "s.a", "e.g"


def split_sentences(text: str) -> list[str]:
    """Split one paragraph into sentences; citations after a full stop ("... fim. [2]") stay with it."""
    text = " ".join(text.split())
    if not text:
        return []
    pieces: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        head = text[start : match.start()]
        following = text[match.end() : match.end() + 1]
        if (
            not following
            or following.islower()
            or _ends_with_abbreviation(head)
            or re.fullmatch(r"(?:\d{1,3}|[IVXLC]{1,6})\.", head.strip())  # inline list number "1. Item"
        ):
            continue
        pieces.append(head)
        start = match.end()
    pieces.append(text[start:])
    sentences: list[str] = []
    for piece in pieces:
        lead = _LEADING_CITATIONS.match(piece)
        if lead and sentences:
            sentences[-1] = f"{sentences[-1]} {lead.group(1).strip()}"
            piece = piece[lead.end() :]
        if piece.strip():
            sentences.append(piece.strip())
    return sentences


def split_markdown(document_md: str) -> list[str]:
    """Sentences of a Markdown draft: headings and list items are units of their own, paragraphs split."""
    sentences: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            sentences.extend(split_sentences(" ".join(paragraph)))
            paragraph.clear()

    for raw in document_md.splitlines():
        if not raw.strip() or re.fullmatch(r"\s*([-*_=]\s*){3,}", raw):
            flush()
        elif _HEADING.match(raw) or _LIST_MARKER.match(raw):
            flush()
            paragraph.append(clean_markdown(raw))
            if _HEADING.match(raw):
                flush()
        else:
            paragraph.append(clean_markdown(raw))
    flush()
    return sentences


_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*|\d+(?:[.,]\d+)*")

STOPWORDS = {
    "pt": frozenset(
        """
        a o as os um uma uns umas de do da dos das em no na nos nas por pelo pela pelos pelas para pra
        com ao aos e ou que se sua seu suas seus lhe lhes ele ela eles elas este esta estes estas esse
        essa esses essas isso isto aquele aquela aquilo como mais mas tambem ja quando onde qual quais
        cujo cuja cujos cujas ser sera sao e foi foram sendo sido esta estao estar ter tem teve tera
        havera ha houver havendo seja sejam caso bem assim entao pois porque desde ate entre sobre sob
        apos perante conforme mesmo mesma outro outra outros outras ainda nesta neste nessa nesse
        deste desta dessa desse dele dela deles delas num numa sempre-que ante tal tais
        """.split()
    ),
    "en": frozenset(
        """
        a an the of to in on at by for with from and or that which who whom whose this these those
        it its is are was were be been being has have had having as into than then also such their
        they them he she his her him we our you your i me my there here about over after before
        while during up out so if but do does did would will shall could should can may might
        """.split()
    ),
}

# Negation and restriction markers are never stopwords: they decide entailment.
# "defesa" is left out although it can mean "forbidden" (defeso/defesa): in legal prose it is almost
# always the noun ("estado de defesa", "direito de defesa").
NEGATIONS = {
    "pt": frozenset(
        "nao nem nunca jamais nenhum nenhuma ninguem nada vedado vedada vedados vedadas vedo veda "
        "proibido proibida proibidos proibidas defeso sem salvo exceto impedido impedida "
        "inadmissivel incabivel descabe".split()
    ),
    "en": frozenset("not no never neither nor none nobody nothing without cannot n't denied".split()),
}


def detect_language(text: str) -> str:
    """Portuguese unless English function words clearly dominate (the product drafts in Portuguese)."""
    words = _WORD.findall(fold(text))
    en = sum(w in _EN_MARKERS for w in words)
    pt = sum(w in _PT_MARKERS for w in words)
    return "en" if en > pt else "pt"


_EN_MARKERS = frozenset("the of and to is was were are with that this for by from has have".split())
_PT_MARKERS = frozenset("o os a as de do da dos das em no na e que com para por nao se".split())


def tokens(text: str) -> list[str]:
    """Folded word and number tokens, hyphenated words split ("constitui-se" -> "constitui", "se")."""
    out: list[str] = []
    for token in _WORD.findall(fold(text)):
        out.extend(token.split("-") if not token[0].isdigit() else [token])
    return out


def stem_all(words: list[str], language: str) -> list[str]:
    """Stems of words; numbers pass through untouched."""
    stem = stemmer(language)
    return [w if w[0].isdigit() else stem.stemWord(w) for w in words]


_NUMBER_WORDS = {
    "um": 1,
    "uma": 1,
    "dois": 2,
    "duas": 2,
    "tres": 3,
    "quatro": 4,
    "cinco": 5,
    "seis": 6,
    "sete": 7,
    "oito": 8,
    "nove": 9,
    "dez": 10,
    "onze": 11,
    "doze": 12,
    "treze": 13,
    "quatorze": 14,
    "catorze": 14,
    "quinze": 15,
    "dezesseis": 16,
    "dezessete": 17,
    "dezoito": 18,
    "dezenove": 19,
    "vinte": 20,
    "trinta": 30,
    "quarenta": 40,
    "cinquenta": 50,
    "sessenta": 60,
    "setenta": 70,
    "oitenta": 80,
    "noventa": 90,
    "cem": 100,
    "cento": 100,
    "duzentos": 200,
    "trezentos": 300,
    "quinhentos": 500,
    "mil": 1000,
    "primeiro": 1,
    "primeira": 1,
    "segundo": 2,
    "segunda": 2,
    "terceiro": 3,
    "terceira": 3,
    "quarto": 4,
    "quarta": 4,
    "quinto": 5,
    "quinta": 5,
    "sexto": 6,
    "setimo": 7,
    "oitavo": 8,
    "nono": 9,
    "decimo": 10,
    "metade": 0.5,
    "terco": 1 / 3,
    "tercos": 2 / 3,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "hundred": 100,
    "thousand": 1000,
    "million": 1e6,
    "billion": 1e9,
    "milhao": 1e6,
    "milhoes": 1e6,
    "bilhao": 1e9,
    "bilhoes": 1e9,
    "half": 0.5,
    "third": 3,
    "first": 1,
    "second": 2,
    "fourth": 4,
    "fifth": 5,
}
_ROMAN = re.compile(r"^(?=[ivxlc]+$)c{0,3}(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})$")
_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}


def _roman(word: str) -> int:
    total = 0
    for ch, nxt in zip(word, [*word[1:], ""], strict=True):
        value = _ROMAN_VALUES[ch]
        total += -value if nxt and _ROMAN_VALUES[nxt] > value else value
    return total


def _parse_number(raw: str) -> float:
    """ "1.234" and "1,234" are thousands (pt and en); otherwise the separator is a decimal point."""
    if re.fullmatch(r"\d{1,3}(?:([.,])\d{3})(?:\1\d{3})*", raw):
        return float(re.sub(r"[.,]", "", raw))
    head, _, tail = re.sub(r"[.,](?=.*[.,])", "", raw).replace(",", ".").partition(".")
    return float(f"{head}.{tail}" if tail else head)


def numbers(text: str) -> set[float]:
    """Every quantity in a text: digits ("1.234", "2,5", "5º"), number words ("dez", "trinta") and the
    Roman numerals heading statute items ("IV -"). "um"/"uma" (also the article "a/an") and
    "segundo" ("according to") are left out: as numbers they are indistinguishable from those uses."""
    found: set[float] = set()
    folded = fold(text)
    for raw in re.findall(r"\d+(?:[.,]\d+)*", folded):
        found.add(_parse_number(raw))
    for word in re.findall(r"[a-z]+", folded):
        if word in _NUMBER_WORDS and word not in ("um", "uma", "segundo", "second"):
            found.add(float(_NUMBER_WORDS[word]))
    for word in re.findall(r"\b([IVXLC]{2,7}|[IVX])\b\s*(?=[-–—,;:.)]|$)", text):
        low = word.lower()
        if _ROMAN.match(low):
            found.add(float(_roman(low)))
    return found
