"""What a parser returns, and the two ways it refuses a file.

A ParsedDocument is the whole of what intake keeps: its blocks carry the text, the page (PDF) and the
heading path a citation and a chunker need, so storing `to_json()` (or at least `text`) beside the
original's SHA-256 lets a reindex run without the original. The reasons in UnreadableDocument are English
sentences written for the user who sent the file; the API shows them as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, get_args

BlockKind = Literal["heading", "paragraph", "table", "footnote"]
KINDS: frozenset[str] = frozenset(get_args(BlockKind))


class UnsupportedType(ValueError):
    """The content type (declared, or found in the bytes) is not one intake reads: the API answers 415."""

    def __init__(self, content_type: str):
        self.content_type = content_type
        super().__init__(f"{content_type or 'a file without a content type'} is not supported")


class UnreadableDocument(ValueError):
    """A supported type whose bytes cannot be read; `reason` is a sentence the user can act on."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Block:
    """One heading, paragraph, table or footnote in reading order.

    `page` is the 1-based PDF page, None for formats without pages. `heading_path` is the chain of headings
    the block sits under, outermost first; a heading's own path ends with itself. A table's text is its rows,
    one a line, cells joined by " | ".
    """

    text: str
    page: int | None
    heading_path: tuple[str, ...]
    kind: BlockKind = "paragraph"


@dataclass(frozen=True)
class ParsedDocument:
    """`pages` is 0 for formats without pages (DOCX, HTML, text); `ocr_pages` counts pages read by OCR."""

    parser: str
    pages: int
    ocr_pages: int
    blocks: list[Block]

    @property
    def text(self) -> str:
        """The extracted text, blocks separated by a blank line: what PostgreSQL keeps for a reindex."""
        return "\n\n".join(block.text for block in self.blocks)

    def to_json(self) -> str:
        return json.dumps(
            {
                "parser": self.parser,
                "pages": self.pages,
                "ocr_pages": self.ocr_pages,
                "blocks": [[b.text, b.page, list(b.heading_path), b.kind] for b in self.blocks],
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, stored: str) -> ParsedDocument:
        data: dict[str, Any] = json.loads(stored)
        blocks = []
        for text, page, path, kind in data["blocks"]:
            if kind not in KINDS:
                raise ValueError(f"unknown block kind {kind!r}")
            blocks.append(Block(text, page, tuple(path), kind))
        return cls(data["parser"], data["pages"], data["ocr_pages"], blocks)
