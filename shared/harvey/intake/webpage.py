"""HTML with selectolax (Lexbor, an HTML5 parser in C): the page's content without its chrome.

Dropped with everything inside: nav, header and footer (unless inside main/article, where they carry the
article's own title), aside, script, style, noscript, template, form, iframe, svg, and elements whose ARIA
role is navigation, banner, contentinfo, complementary or search, or that are hidden. Then, inside <main>
(or <article>, else <body>): h1–h6 build the heading path; each paragraph, list item or other block of text
is a block, a table is one block with a line a row. The page is walked with an explicit stack, so a
hostile nesting depth cannot overflow Python's.
"""

from __future__ import annotations

import re

from harvey.intake.document import Block, ParsedDocument
from harvey.intake.lines import Outline
from harvey.intake.plaintext import decode

DROPPED = "nav, aside, script, style, noscript, template, form, iframe, svg, object, dialog, [hidden]"
DROPPED_ROLES = ("navigation", "banner", "contentinfo", "complementary", "search")
CHROME = "header, footer"
BLOCK_TAGS = frozenset(
    "address article blockquote dd div dl dt fieldset figcaption figure li main ol p pre section ul "
    "caption details summary center".split()
)
HEADINGS = {f"h{level}": level for level in range(1, 7)}
META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.I)


def parse_html(data: bytes, charset: str | None) -> ParsedDocument:
    from selectolax.lexbor import LexborHTMLParser

    declared = charset or (found.group(1).decode("ascii") if (found := META_CHARSET.search(data[:4096])) else None)
    tree = LexborHTMLParser(decode(data, declared))
    for node in tree.css(DROPPED):
        node.decompose()
    for role in DROPPED_ROLES:
        for node in tree.css(f'[role="{role}"]'):
            node.decompose()
    for node in tree.css(CHROME):
        if not inside(node, ("main", "article")):
            node.decompose()
    root = tree.css_first("main") or tree.css_first("article") or tree.body
    return ParsedDocument("selectolax", 0, 0, walk(root) if root is not None else [])


def inside(node, tags: tuple[str, ...]) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag in tags:
            return True
        parent = parent.parent
    return False


def walk(root) -> list[Block]:
    outline = Outline()
    blocks: list[Block] = []
    buffer: list[str] = []

    def flush() -> None:
        text = " ".join("".join(buffer).split())
        buffer.clear()
        if text:
            blocks.append(Block(text, None, outline.path, "paragraph"))

    stack = [(root.child, False)] if root.child is not None else []
    while stack:
        node, leaving = stack.pop()
        if leaving:
            flush()
            continue
        if node.next is not None:
            stack.append((node.next, False))
        tag = node.tag
        if tag == "-text":
            buffer.append(node.text_content or "")
        elif tag == "br":
            buffer.append(" ")
        elif tag in HEADINGS:
            flush()
            text = " ".join(node.text(separator=" ").split())
            if text:
                blocks.append(Block(text, None, outline.enter(HEADINGS[tag], text), "heading"))
        elif tag == "table":
            flush()
            text = table_text(node)
            if text:
                blocks.append(Block(text, None, outline.path, "table"))
        elif node.child is not None and tag not in ("-comment", "head"):
            if tag in BLOCK_TAGS:
                flush()
                stack.append((node, True))
            stack.append((node.child, False))
    flush()
    return blocks


def table_text(table) -> str:
    rows = []
    for row in table.css("tr"):
        cells = [" ".join(cell.text(separator=" ").split()) for cell in row.css("th, td")]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)
