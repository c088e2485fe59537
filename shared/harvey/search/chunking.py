"""Split documents into retrievable, citable chunks.

Brazilian statutes are cited by article and, inside long articles, by paragraph or inciso, so a chunk
is one article when it fits and otherwise a run of §/incisos that repeats the caput, which is what
gives a lone inciso its meaning. Memos and other prose are packed by paragraphs up to a size limit.
Only the text in force is chunked (`harvey.search.vigencia`): revoked, vetoed and superseded units never
reach a chunk, and each article chunk records its amending acts and constitutional challenges.
Chunk ids are uuid5 of (document, position, text): re-ingesting the same document is idempotent.

Uploaded files arrive parsed (`harvey.intake`: blocks with their page and heading path) and go through
`chunk_parsed`, which keeps both on every chunk (metadata "page", an int for PDFs, and "heading_path").
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harvey.search import vigencia

if TYPE_CHECKING:
    from harvey.intake import Block, ParsedDocument

# Part of every document's content hash: a change to what chunks hold (v2: text no longer in force —
# revoked, vetoed, superseded wordings — is left out) makes the next ingest re-chunk unchanged files.
VERSION = "2"
MAX_CHARS = 1200
CAPUT_CONTEXT_CHARS = 300
_NAMESPACE = uuid.UUID("5f0c2a52-7d8e-4b8e-9a55-3c1d8e6b2f10")


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    document_id: str
    position: int
    label: str
    title: str
    text: str
    metadata: dict = field(default_factory=dict)


# Law identifiers seen in ids, metadata and file names -> (citation abbreviation, title).
_LAWS: dict[str, tuple[str, str]] = {
    "cf88": ("CF/88", "Constituição Federal de 1988"),
    "cf1988": ("CF/88", "Constituição Federal de 1988"),
    "cf": ("CF/88", "Constituição Federal de 1988"),
    "adct": ("ADCT", "Ato das Disposições Constitucionais Transitórias"),
    "adct1988": ("ADCT", "Ato das Disposições Constitucionais Transitórias"),
    "cc": ("CC", "Código Civil (Lei 10.406/2002)"),
    "codigocivil": ("CC", "Código Civil (Lei 10.406/2002)"),
    "cdc": ("CDC", "Código de Defesa do Consumidor (Lei 8.078/1990)"),
    "cpc": ("CPC", "Código de Processo Civil (Lei 13.105/2015)"),
    "codigoprocessocivil": ("CPC", "Código de Processo Civil (Lei 13.105/2015)"),
    "clt": ("CLT", "Consolidação das Leis do Trabalho (DL 5.452/1943)"),
    "cp": ("CP", "Código Penal (DL 2.848/1940)"),
    "codigopenal": ("CP", "Código Penal (DL 2.848/1940)"),
    "cpp": ("CPP", "Código de Processo Penal (DL 3.689/1941)"),
    "codigoprocessopenal": ("CPP", "Código de Processo Penal (DL 3.689/1941)"),
    "ctn": ("CTN", "Código Tributário Nacional (Lei 5.172/1966)"),
    "codigotributarionacional": ("CTN", "Código Tributário Nacional (Lei 5.172/1966)"),
    "l8906": ("EAOAB", "Estatuto da Advocacia e da OAB (Lei 8.906/1994)"),
    "8906": ("EAOAB", "Estatuto da Advocacia e da OAB (Lei 8.906/1994)"),
    "lei8906": ("EAOAB", "Estatuto da Advocacia e da OAB (Lei 8.906/1994)"),
    "estatutooablei8906": ("EAOAB", "Estatuto da Advocacia e da OAB (Lei 8.906/1994)"),
    "eaoab": ("EAOAB", "Estatuto da Advocacia e da OAB (Lei 8.906/1994)"),
}

_ARTICLE = (
    r"Art(?:igo)?\.?[ \t]*(?P<num>\d{1,2}(?:\.\d{3})+|\d+)[ \t]*[º°o]?"
    r"(?:(?:-|(?<=\d))(?P<suffix>[A-Z])\b)?"
)
_ARTICLE_START = re.compile(r"^[ \t]*" + _ARTICLE, re.MULTILINE)
# Single-article texts sometimes carry their section heading on the same line ("Dos Direitos … Art. 5º").
_ARTICLE_AFTER_HEADING = re.compile(r"(?<=[\s.])" + _ARTICLE)
HEADING_MAX_CHARS = 300
# Boundaries inside an article: paragraphs, "Parágrafo único" and incisos (roman numeral + dash).
_UNIT_START = re.compile(
    r"(?:(?<=\n)|(?<=[.;:]\s))[ \t]*(?P<marker>§[ \t]*\d+[ \t]*[º°o]?|Par[áa]grafo [úu]nico|"
    r"(?P<roman>[IVXLC]+)[ \t]*[-–—])"
)
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_SEPARATOR_LINE = re.compile(r"^[ \t]*-{3,}[ \t]*$", re.MULTILINE)


def _key(value: str) -> str:
    folded = unicodedata.normalize("NFKD", value.lower())
    return "".join(ch for ch in folded if ch.isalnum() and not unicodedata.combining(ch))


def law_info(document_id: str, metadata: dict) -> tuple[str, str] | None:
    """(abbreviation, title) of the statute a document belongs to, from metadata or the id prefix."""
    for candidate in (metadata.get("law"), document_id.split(":", 1)[0] if ":" in document_id else None):
        if candidate and _key(str(candidate)) in _LAWS:
            return _LAWS[_key(str(candidate))]
    law = metadata.get("law") or (document_id.split(":", 1)[0] if ":" in document_id else None)
    return (str(law), str(law)) if law else None


def format_article(number: str, suffix: str | None = None) -> str:
    """Brazilian citation form: ordinal up to 9 ("5º"), thousands dot ("1.358"), letter suffix ("103-A")."""
    digits = number.replace(".", "")
    n = int(digits)
    text = f"{n}º" if n < 10 else f"{n:,}".replace(",", ".")
    return f"{text}-{suffix.upper()}" if suffix else text


def _unit_label(marker: str) -> str:
    marker = " ".join(marker.split())
    if marker.startswith("§"):
        number = int(re.sub(r"\D", "", marker))
        return f"§ {number}º" if number < 10 else f"§ {number}"
    if marker.lower().startswith("par"):
        return "parágrafo único"
    return "inc. " + marker.rstrip("-–— ")


def chunk_document(document_id: str, text: str, title: str | None = None, metadata: dict | None = None) -> list[Chunk]:
    """Chunks of one document, legal-structure-aware when the text contains articles."""
    metadata = dict(metadata or {})
    text = _SEPARATOR_LINE.sub("", text).strip()
    if not text:
        return []
    law = law_info(document_id, metadata)
    doc_title = title or (law[1] if law else document_id)
    pieces: list[tuple[str, str, dict]] = []  # (label, text, extra metadata)
    starts = list(_ARTICLE_START.finditer(text))
    if not starts:
        heading = _ARTICLE_AFTER_HEADING.search(text, 0, HEADING_MAX_CHARS)
        starts = [heading] if heading else []
    if starts:
        abbr = law[0] if law else doc_title
        preamble = text[: starts[0].start()].strip()
        if preamble and len(preamble) > HEADING_MAX_CHARS:
            pieces.extend((doc_title, part, {}) for part in _pack_prose(preamble))
        for i, match in enumerate(starts):
            begin = 0 if i == 0 and len(preamble) <= HEADING_MAX_CHARS else match.start()
            end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
            number = format_article(match["num"], match["suffix"])
            if len(starts) == 1 and metadata.get("article"):
                number = _article_from_metadata(str(metadata["article"])) or number
            base = f"{abbr}, art. {number}"
            provision = vigencia.parse(text[begin:end].strip())
            for label_suffix, part in _split_article(provision.text) if provision.text else []:
                label = f"{base}, {label_suffix}" if label_suffix else base
                pieces.append((label, part, {"article": number, "vigencia": vigencia.chunk_vigencia(provision, part)}))
    else:
        pieces = [(doc_title, part, {}) for part in _pack_prose(text)]
    chunks = []
    for position, (label, part, extra) in enumerate(pieces):
        chunks.append(
            Chunk(
                chunk_id=chunk_id(document_id, position, part),
                document_id=document_id,
                position=position,
                label=label,
                title=doc_title,
                text=part,
                metadata={**metadata, **({"law": law[0]} if law else {}), **extra},
            )
        )
    return chunks


def chunk_id(document_id: str, position: int, text: str) -> str:
    """uuid5 of (document, position, text): the same document always gives the same ids."""
    return str(uuid.uuid5(_NAMESPACE, f"{document_id}\x1f{position}\x1f{text}"))


def _article_from_metadata(article: str) -> str | None:
    match = re.fullmatch(r"\s*(\d+)\s*[º°o]?\s*(?:-?\s*([A-Za-z]))?(?:#\d+)?\s*", article)
    return format_article(match[1], match[2]) if match else None


def _split_article(article: str) -> list[tuple[str | None, str]]:
    """One piece if the article fits; otherwise runs of §/incisos, each prefixed with the caput."""
    if len(article) <= MAX_CHARS:
        return [(None, article)]
    bounds = [m for m in _UNIT_START.finditer(article) if m.start() > 0]
    if not bounds:
        return [(None, part) for part in _pack_prose(article)]
    caput = article[: bounds[0].start()].strip()
    context = caput if len(caput) <= CAPUT_CONTEXT_CHARS else caput[:CAPUT_CONTEXT_CHARS].rsplit(" ", 1)[0] + " […]"
    units: list[tuple[str, str]] = []
    paragraph = ""
    for i, m in enumerate(bounds):
        label = _unit_label(m["marker"])
        if not m["roman"]:
            paragraph = label
        elif paragraph:
            label = f"{paragraph}, {label}"
        units.append((label, article[m.start() : (bounds[i + 1].start() if i + 1 < len(bounds) else None)].strip()))
    budget = MAX_CHARS - len(context) - 1
    out: list[tuple[str | None, str]] = []
    if len(caput) > CAPUT_CONTEXT_CHARS:
        out.extend((None, part) for part in _pack_prose(caput))
    group: list[tuple[str, str]] = []
    for unit in units:
        if group and sum(len(u[1]) + 1 for u in group) + len(unit[1]) > budget:
            out.extend(_emit(context, group))
            group = []
        group.append(unit)
    out.extend(_emit(context, group))
    return out


def _emit(context: str, group: list[tuple[str, str]]) -> list[tuple[str | None, str]]:
    first, last = group[0][0], group[-1][0]
    label = first if first == last else f"{first} a {last}"
    body = "\n".join(u[1] for u in group)
    if len(context) + 1 + len(body) <= MAX_CHARS:
        return [(label, f"{context}\n{body}")]
    budget = max(MAX_CHARS - len(context) - 1, MAX_CHARS // 2)
    return [(label, f"{context}\n{part}") for part in _pack_prose(body, budget)]


def _pack_prose(text: str, limit: int = MAX_CHARS) -> list[str]:
    """Greedy packing of paragraphs, then sentences, then words, into pieces of at most `limit` chars."""
    pieces: list[str] = []
    current = ""
    for block in re.split(r"\n\s*\n", text.strip()):
        block = block.strip()
        for part in [block] if len(block) <= limit else _split_long(block, limit):
            if current and len(current) + 2 + len(part) > limit:
                pieces.append(current)
                current = ""
            current = f"{current}\n\n{part}" if current else part
    if current:
        pieces.append(current)
    return pieces


def _split_long(block: str, limit: int) -> list[str]:
    parts: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(block):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            parts.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if current and len(current) + 1 + len(sentence) > limit:
            parts.append(current)
            current = ""
        current = f"{current} {sentence}" if current else sentence
    if current:
        parts.append(current)
    return parts


# A paragraph that is a statute's unit: an article, a §, "Parágrafo único", an inciso or an alínea.
_STATUTE_UNIT = re.compile(r"^[ \t]*(?:§[ \t]*\d|Par[áa]grafo [úu]nico|[IVXLC]+[ \t]*[-–—]|[a-z]\)[ \t])")
_PROBE_CHARS = 40  # how much of a block's start identifies it inside a chunk


@dataclass(frozen=True)
class _Piece:
    label: str
    text: str
    page: int | None
    heading_path: tuple[str, ...]
    metadata: dict = field(default_factory=dict)


def chunk_parsed(
    document_id: str, parsed: ParsedDocument, title: str | None = None, metadata: dict | None = None
) -> list[Chunk]:
    """Chunks of a parsed upload, each with the page it starts on and the headings it sits under.

    A statute (at least half of its paragraphs are articles, §§, incisos or alíneas) keeps the
    legal-structure chunker, one article at a time, so an article's chunks start on the article's page.
    Briefs, contracts and opinions are chunked by section (cláusula, tópico: the blocks under one heading
    path) and packed by paragraph up to MAX_CHARS; a chunk never spans two sections, and is labelled by
    its innermost heading.
    """
    metadata = dict(metadata or {})
    law = law_info(document_id, metadata)
    doc_title = title or (law[1] if law else document_id)
    body = [b for b in parsed.blocks if b.kind != "heading" and b.text.strip()]
    if _is_statute(body):
        pieces = _statute_pieces(document_id, body, doc_title, metadata)
    else:
        pieces = _section_pieces(body, doc_title, metadata)
    chunks = []
    for position, piece in enumerate(pieces):
        located: dict[str, int | list[str]] = {"page": piece.page} if piece.page is not None else {}
        if piece.heading_path:
            located["heading_path"] = list(piece.heading_path)
        chunks.append(
            Chunk(
                chunk_id=chunk_id(document_id, position, piece.text),
                document_id=document_id,
                position=position,
                label=piece.label,
                title=doc_title,
                text=piece.text,
                metadata={**piece.metadata, **located},
            )
        )
    return chunks


def _is_statute(body: Sequence[Block]) -> bool:
    articles = sum(1 for b in body if _ARTICLE_START.match(b.text))
    units = sum(1 for b in body if _STATUTE_UNIT.match(b.text))
    return articles > 0 and 2 * (articles + units) >= len(body)


def _statute_pieces(document_id: str, body: Sequence[Block], doc_title: str, metadata: dict) -> list[_Piece]:
    """Prose before the first article by section; then each article (with the §§, incisos, tables and
    notes that follow it) through `chunk_document`, which applies vigência and splits long articles."""
    first = next(i for i, b in enumerate(body) if _ARTICLE_START.match(b.text))
    pieces = _section_pieces(body[:first], doc_title, metadata)
    groups: list[list[Block]] = []
    for block in body[first:]:
        if _ARTICLE_START.match(block.text) or not groups:
            groups.append([])
        groups[-1].append(block)
    for group in groups:
        text = "\n".join(b.text for b in group)
        for i, chunk in enumerate(chunk_document(document_id, text, doc_title, metadata)):
            page = _starting_page(chunk.text, group, repeats_caput=i > 0)
            pieces.append(_Piece(chunk.label, chunk.text, page, group[0].heading_path, chunk.metadata))
    return pieces


def _starting_page(text: str, group: Sequence[Block], *, repeats_caput: bool) -> int | None:
    """The page of the block a piece's own text starts in. A split article's later pieces open with the
    caput (or its first words and " […]") on a line of its own: their own text starts after it."""
    own = text
    if repeats_caput:
        context, newline, rest = text.partition("\n")
        if newline and _squeeze(group[0].text).startswith(_squeeze(context.removesuffix(" […]"))):
            own = rest
    probe = _squeeze(own)[:_PROBE_CHARS]
    for block in group:
        if probe in _squeeze(block.text):
            return block.page
    return group[0].page


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def _section_pieces(body: Sequence[Block], doc_title: str, metadata: dict) -> list[_Piece]:
    pieces: list[_Piece] = []
    parts: list[tuple[str, int | None]] = []
    path: tuple[str, ...] = ()

    def flush() -> None:
        if parts:
            label = path[-1] if path else doc_title
            text = "\n\n".join(t for t, _ in parts)
            pieces.append(_Piece(label, text, parts[0][1], path, dict(metadata)))
            parts.clear()

    for block in body:
        if block.heading_path != path:
            flush()
            path = block.heading_path
        texts = [block.text] if len(block.text) <= MAX_CHARS else _split_long(block.text, MAX_CHARS)
        for text in texts:
            if parts and sum(len(t) + 2 for t, _ in parts) + len(text) > MAX_CHARS:
                flush()
            parts.append((text, block.page))
    flush()
    return pieces
