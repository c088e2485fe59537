"""The review page of one run: the draft as a lawyer reads it, with the controls that turn reading into feedback.

The draft is untrusted text (a model wrote it from retrieved documents), so none of it ever becomes
markup: the page renders a small Markdown subset itself (headings, paragraphs, list items, rules,
**bold**, *italic*) with every character escaped, and hands the script the rest (sources, token,
`document_md`) as JSON in a non-executable `<script type="application/json">` block, which the
script only ever puts into the page through textContent.

Every rendered piece of draft text is one element with `data-s`, the code-point offset of its first
character in `document_md`, holding exactly that slice of `document_md` and nothing else. Markdown
syntax (heading hashes, bullets, emphasis markers) is left out of the pieces, so it can never be
selected. From those offsets alone the script turns a DOM selection into code-point offsets for
`error_spans` (static/review.js). Script and style are inlined under a per-response nonce, which is
what lets the Content-Security-Policy forbid everything else.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

ERROR_LABELS = ("fonte inexistente", "citação errada", "afirmação sem suporte", "erro de redação", "outro")
SOURCE_CLASSES = {
    "legislacao": "Legislação",
    "jurisprudencia": "Jurisprudência",
    "sumula": "Súmula",
    "doutrina": "Doutrina",
    "documento": "Documento do escritório",
    "outro": "Outro",
}
TAG = "pagina_de_revisao"  # every feedback posted from the page carries it, so analytics can tell
FLAG_REASONS = {
    "citation_missing": "cita uma fonte que não está entre as recuperadas",
    "number_missing": "número, valor ou prazo que a fonte citada não traz",
    "article_missing": "artigo, parágrafo ou inciso que a fonte citada não traz",
    "negation_mismatch": "negação invertida em relação à fonte",
    "modal_mismatch": "troca de “deve” por “pode” (ou o contrário) em relação à fonte",
    "restrictor_missing": "restrição (“somente”, “todos”…) que a fonte não tem",
    "antonym_conflict": "termo jurídico oposto ao da fonte (ex.: absoluta × relativa)",
    "novel_run": "trecho acrescentado que as fontes não contêm",
    "questionada": "apoia-se em dispositivo questionado no STF",
}
_LINE_ENDS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines splits on
_HEADING = re.compile(r"[ \t]{0,3}(#{1,6})[ \t]+")
_RULE = re.compile(r"[ \t]*(?:[-*_=][ \t]*){3,}")
_BULLET = re.compile(r"[ \t]*[-*+•][ \t]+")
_ENUMERATED = re.compile(r"[ \t]*(?:\d{1,3}[.)]|[a-z][.)]|[IVXLC]{1,6}[ \t]*[-–—.)])[ \t]+")
_EMPHASIS = r"|\*\*(?=\S)(?P<strong>.+?)(?<=\S)\*\*|\*(?=[^\s*])(?P<em>[^*]+?)(?<=[^\s*])\*"
_IGNORED_IN_SEARCH = frozenset("*_`")  # what the faithfulness splitter strips from sentence texts


class NoDocument(ValueError):
    """The run has no document to review (withheld for a logs-only tenant, or not finished)."""


@dataclass(frozen=True)
class Source:
    """A cited source as the page shows it when its [n] is opened."""

    n: int
    label: str
    title: str
    excerpt: str
    vigencia: str = ""


@dataclass(frozen=True)
class Claim:
    """A sentence of the faithfulness report the reviewer should check: unsupported, or flagged.

    start/end are code points into document_md (end exclusive), None when the sentence's text
    could not be found in it: it is then listed but not highlighted."""

    text: str
    supported: bool
    reasons: tuple[str, ...]
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True)
class ReviewView:
    """Everything the page shows of one run. `feedback_url` is where the page POSTs (relative URLs
    resolve against the page's own URL)."""

    run_id: str
    document_md: str
    sources: tuple[Source, ...]
    claims: tuple[Claim, ...]
    feedback_url: str
    doc_type: str = ""
    faithfulness_score: float | None = None


def feedback_path(run_id: str) -> str:
    """Where the page at /review/{run_id} posts: /review/{run_id}/feedback, relative so that a path
    prefix in HARVEY_REVIEW_BASE_URL is kept."""
    return f"{quote(run_id, safe='')}/feedback"


def new_nonce() -> str:
    import secrets

    return secrets.token_urlsafe(18)


def content_security_policy(nonce: str) -> str:
    """Nothing but the page's own nonced script and style, requests to its own origin, no framing."""
    if not re.fullmatch(r"[A-Za-z0-9_+/=-]{16,}", nonce):
        raise ValueError("nonce must be at least 16 base64 characters")
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def response_headers(nonce: str) -> dict[str, str]:
    """Headers to send with the page: the CSP, and no caching or referrer (the URL carries the token)."""
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": content_security_policy(nonce),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Robots-Tag": "noindex, nofollow",
    }


def _searchable(text: str) -> tuple[str, list[int]]:
    """Text as the faithfulness splitter reports it (emphasis markers out, whitespace runs as one
    space) and, for each of its characters, the code-point offset it came from."""
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if ch in _IGNORED_IN_SEARCH:
            continue
        if ch.isspace():
            if chars and chars[-1] == " ":
                continue
            ch = " "
        chars.append(ch)
        origin.append(i)
    return "".join(chars), origin


def locate(document_md: str, sentences: Sequence[str]) -> list[tuple[int, int] | None]:
    """(start, end) code points of each report sentence in document_md, in report order.

    The report keeps sentence order, so each is searched after the previous one (a sentence repeated
    in the conclusion gets its own place), then anywhere; None when it is not in the text at all."""
    haystack, origin = _searchable(document_md)
    cursor = 0
    found: list[tuple[int, int] | None] = []
    for sentence in sentences:
        needle = _searchable(sentence)[0].strip()
        at = haystack.find(needle, cursor) if needle else -1
        if at < 0 and needle:
            at = haystack.find(needle)
        if at < 0:
            found.append(None)
            continue
        last = at + len(needle) - 1
        found.append((origin[at], origin[last] + 1))
        cursor = last + 1
    return found


def _reasons(sentence: Mapping[str, Any]) -> tuple[str, ...]:
    reasons: list[str] = []
    citations = sentence.get("citations") or []
    if not citations:
        reasons.append("afirmação sem citação de fonte")
    elif not sentence.get("supported"):
        cited = ", ".join(f"[{n}]" for n in citations)
        score = f"{float(sentence.get('support_score') or 0):.2f}".replace(".", ",")
        reasons.append(f"suporte fraco em {cited} (escore {score})")
    reasons += [FLAG_REASONS.get(flag, flag) for flag in sentence.get("flags") or []]
    judge = sentence.get("judge") or {}
    if judge.get("reason"):
        reasons.append(f"avaliador {judge.get('model', '')}: {judge['reason']}")
    return tuple(reasons)


def view_from_result(
    run_id: str, result: Mapping[str, Any], *, doc_type: str = "", feedback_url: str | None = None
) -> ReviewView:
    """The page's view of a generate response (a `runs` row's `result`); NoDocument when it has no text."""
    from harvey.search import vigencia

    document_md = result.get("document_md")
    if not isinstance(document_md, str) or not document_md:
        raise NoDocument(f"run {run_id} has no document to review")
    sources = tuple(
        Source(
            n=int(row["n"]),
            label=str(row.get("label") or ""),
            title=str(row.get("title") or ""),
            excerpt=str(row.get("excerpt") or ""),
            vigencia=vigencia.describe(row),
        )
        for row in result.get("citations") or []
    )
    report = result.get("faithfulness_report") or {}
    sentences = list(report.get("sentences") or [])
    places = locate(document_md, [str(s.get("text") or "") for s in sentences])
    claims = tuple(
        Claim(
            text=str(s.get("text") or ""),
            supported=bool(s.get("supported")),
            reasons=_reasons(s),
            start=place[0] if place else None,
            end=place[1] if place else None,
        )
        for s, place in zip(sentences, places, strict=True)
        if not s.get("supported") or s.get("flags")
    )
    score = report.get("score")
    return ReviewView(
        run_id=run_id,
        document_md=document_md,
        sources=sources,
        claims=claims,
        feedback_url=feedback_url or feedback_path(run_id),
        doc_type=doc_type,
        faithfulness_score=float(score) if isinstance(score, int | float) else None,
    )


@lru_cache(maxsize=2)
def _static(name: str) -> str:
    from importlib import resources

    return (resources.files("harvey.review") / "static" / name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _inline_pattern() -> re.Pattern[str]:
    from harvey.faithfulness import _CITATION  # the one marker grammar: what the report reads as [n]

    return re.compile(f"(?P<cite>{_CITATION.pattern}){_EMPHASIS}")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _piece(text: str) -> str:
    """Draft text as markup the browser turns back into exactly these code points: its parser would
    fold CR LF and a lone CR into LF and drop NUL, so those go in as references (NUL as U+FFFD, one
    code point all the same)."""
    return _e(text).replace("\r", "&#13;").replace("\0", "&#xFFFD;")


class _Draft:
    """Renders document_md as escaped HTML pieces, each tagged with its code-point offset."""

    def __init__(self, view: ReviewView):
        self.md = view.document_md
        self.sources = {s.n: s for s in view.sources}
        located = sorted(
            (c.start, c.end, i, c) for i, c in enumerate(view.claims) if c.start is not None and c.end is not None
        )
        self.claims: list[tuple[int, int, int, Claim]] = []
        for claim in located:
            if claim[1] > claim[0] and (not self.claims or claim[0] >= self.claims[-1][1]):
                self.claims.append(claim)  # one that overlaps the previous is listed in the panel, not drawn
        self.out: list[str] = []

    def render(self) -> str:
        paragraph: list[Any] = []  # [start, end, class] of the open paragraph or list item

        def flush() -> None:
            if paragraph:
                self._block("p", paragraph[0], paragraph[1], paragraph[2])
                paragraph.clear()

        offset = 0
        for line in self.md.splitlines(keepends=True):
            start, body = offset, line.rstrip(_LINE_ENDS)
            offset += len(line)
            end = start + len(body.rstrip())
            if not body.strip():
                flush()
            elif heading := _HEADING.match(body):
                flush()
                level = min(len(heading.group(1)) + 1, 6)  # the page's own h1 is the title
                self._block(f"h{level}", start + heading.end(), end, "")
            elif _RULE.fullmatch(body):
                flush()
                self.out.append("<hr>")
            elif bullet := _BULLET.match(body):  # the bullet is drawn by the style, not selectable text
                flush()
                paragraph[:] = [start + bullet.end(), end, "item bullet"]
            elif _ENUMERATED.match(body):  # "a)", "1.", "IV -" are part of the text a lawyer cites
                flush()
                paragraph[:] = [start + len(body) - len(body.lstrip()), end, "item"]
            elif paragraph:
                paragraph[1] = end
            else:
                paragraph[:] = [start + len(body) - len(body.lstrip()), end, ""]
        flush()
        return "".join(self.out)

    def _block(self, tag: str, start: int, end: int, css_class: str) -> None:
        if end <= start:
            return
        self.out.append(f'<{tag} class="{css_class}">' if css_class else f"<{tag}>")
        self._inline(start, end)
        self.out.append(f"</{tag}>")

    def _inline(self, start: int, end: int) -> None:
        position = start
        for match in _inline_pattern().finditer(self.md, start, end):
            self._text(position, match.start())
            if match.group("cite") is not None:
                self._cite(match.start(), match.end())
            else:
                tag = "strong" if match.group("strong") is not None else "em"
                self.out.append(f"<{tag}>")
                self._inline(match.start(tag), match.end(tag))
                self.out.append(f"</{tag}>")
            position = match.end()
        self._text(position, end)

    def _claim_at(self, offset: int) -> tuple[int, int, int, Claim] | None:
        for claim in self.claims:
            if claim[0] <= offset < claim[1]:
                return claim
        return None

    def _wrap(self, claim: tuple[int, int, int, Claim] | None, inner: str) -> str:
        if claim is None:
            return inner
        _, _, index, data = claim
        kind = "flagged" if data.supported else "unsupported"
        title = ("Afirmação com alerta: " if data.supported else "Afirmação sem suporte: ") + "; ".join(data.reasons)
        return f'<mark class="claim {kind}" data-claim="{index}" title="{_e(title)}">{inner}</mark>'

    def _text(self, start: int, end: int) -> None:
        if end <= start:
            return
        cuts = sorted({start, end, *(p for c in self.claims for p in c[:2] if start < p < end)})
        for a, b in zip(cuts, cuts[1:], strict=False):
            piece = f'<span data-s="{a}">{_piece(self.md[a:b])}</span>'
            self.out.append(self._wrap(self._claim_at(a), piece))

    def _cite(self, start: int, end: int) -> None:
        from harvey.faithfulness import parse_citations

        marker = self.md[start:end]
        numbers = parse_citations(marker)
        names = "; ".join(
            f"{n}: {self.sources[n].label}" if n in self.sources else f"{n}: fonte não encontrada" for n in numbers
        )
        button = (
            f'<button type="button" class="cite" data-s="{start}" data-cite="{" ".join(map(str, numbers))}" '
            f'aria-haspopup="dialog" aria-controls="source-popover" aria-expanded="false" '
            f'aria-label="{_e("Ver fonte " + names)}">{_piece(marker)}</button>'
        )
        self.out.append(self._wrap(self._claim_at(start), button))


def _json_for_script(data: Any) -> str:
    """JSON that cannot end its <script> block or open a comment: <, > and & as \\u escapes."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


def _claims_list(view: ReviewView) -> str:
    if not view.claims:
        return '<p class="muted">O relatório de fidelidade não apontou afirmações a conferir.</p>'
    items = []
    for index, claim in enumerate(view.claims):
        kind = "flagged" if claim.supported else "unsupported"
        status = "Com alerta" if claim.supported else "Sem suporte"
        text = claim.text if len(claim.text) <= 180 else claim.text[:177].rstrip() + "…"
        reasons = "".join(f"<li>{_e(r)}</li>" for r in claim.reasons)
        actions = (
            f'<button type="button" class="link" data-goto="{index}">Ver no texto</button>'
            f'<button type="button" class="link" data-mark-claim="{index}">Marcar esta frase</button>'
            if claim.start is not None
            else '<span class="muted">(trecho não localizado no texto)</span>'
        )
        items.append(
            f'<li class="claim-item {kind}"><span class="badge {kind}">{status}</span>'
            f'<q>{_e(text)}</q><ul class="reasons">{reasons}</ul><div class="actions">{actions}</div></li>'
        )
    return f'<ol class="claims">{"".join(items)}</ol>'


def _options(values: Mapping[str, str] | Sequence[str]) -> str:
    pairs = values.items() if isinstance(values, Mapping) else ((v, v[:1].upper() + v[1:]) for v in values)
    return "".join(f'<option value="{_e(value)}">{_e(name)}</option>' for value, name in pairs)


def render(view: ReviewView, token: str, nonce: str) -> str:
    """The complete page (HTML5, pt-BR). Serve it with `response_headers(nonce)` and a fresh nonce
    per response (`new_nonce()`)."""
    from harvey.drafting.prompts import DOC_TYPES

    content_security_policy(nonce)  # rejects a nonce that could break out of its attribute
    draft = _Draft(view).render()
    doc_type = DOC_TYPES.get(view.doc_type, view.doc_type.replace("_", " ").capitalize()) or "Minuta"
    unsupported = sum(1 for c in view.claims if not c.supported)
    score = (
        f'<span class="pill">Fidelidade {round(view.faithfulness_score * 100)}%</span>'
        if view.faithfulness_score is not None
        else ""
    )
    data = {
        "runId": view.run_id,
        "token": token,
        "feedbackUrl": view.feedback_url,
        "documentMd": view.document_md,
        "tags": [TAG],
        "sources": {
            str(s.n): {"n": s.n, "label": s.label, "title": s.title, "excerpt": s.excerpt, "vigencia": s.vigencia}
            for s in view.sources
        },
        "claims": [{"start": c.start, "end": c.end, "supported": c.supported} for c in view.claims],
    }
    return f"""<!doctype html>
<html lang="pt-BR">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<link rel="icon" href="data:,">
<title>Revisão — {_e(doc_type)} — Harvey</title>
<style nonce="{nonce}">{_static("review.css")}</style>
</head>
<body>
<a class="skip" href="#panel">Ir para os controles de revisão</a>
<header class="top">
<div class="brand" aria-hidden="true">Harvey</div>
<div class="heading">
<h1>Revisão da minuta</h1>
<p class="meta"><span>{_e(doc_type)}</span><span>Execução <code>{_e(view.run_id)}</code></span>{score}
<span class="pill warn">{unsupported} sem suporte</span></p>
</div>
</header>
<div class="layout">
<main id="main">
<p class="hint">Selecione um trecho da minuta para marcá-lo; clique num [n] para ver a fonte.
<span class="legend"><mark class="claim unsupported">sem suporte</mark>
<mark class="claim flagged">com alerta</mark></span></p>
<article id="draft" class="paper" aria-label="Minuta">{draft}</article>
</main>
<aside id="panel" class="panel" aria-label="Revisão" tabindex="-1">
<section aria-labelledby="claims-title">
<h2 id="claims-title">Afirmações a conferir <span class="count">{len(view.claims)}</span></h2>
{_claims_list(view)}
</section>
<section aria-labelledby="mark-title">
<h2 id="mark-title">Marcar trecho</h2>
<form id="mark-form" novalidate>
<label for="passage">Trecho <span class="muted">(selecione na minuta ou digite o texto exato)</span></label>
<textarea id="passage" rows="3" spellcheck="false"></textarea>
<p id="passage-where" class="muted small" aria-live="polite">Nenhum trecho selecionado.</p>
<label for="mark-label">Problema</label>
<select id="mark-label">{_options(ERROR_LABELS)}</select>
<label for="mark-suggestion">Sugestão <span class="muted">(opcional)</span></label>
<textarea id="mark-suggestion" rows="2"></textarea>
<button type="submit" id="mark-add" class="secondary">Marcar trecho</button>
</form>
<ol id="marks" class="chips" aria-label="Trechos marcados"></ol>
</section>
<section aria-labelledby="missing-title">
<h2 id="missing-title">Fonte ausente</h2>
<form id="source-form" novalidate>
<label for="missing-raw">Fonte que deveria ter sido citada</label>
<input id="missing-raw" type="text" maxlength="1000" placeholder="ex.: CDC, art. 42, parágrafo único">
<label for="missing-class">Tipo</label>
<select id="missing-class">{_options(SOURCE_CLASSES)}</select>
<button type="submit" id="missing-add" class="secondary">Adicionar fonte</button>
</form>
<ol id="missing" class="chips" aria-label="Fontes ausentes"></ol>
</section>
<form id="feedback-form" novalidate>
<fieldset class="rating">
<legend>Avaliação da minuta</legend>
<label class="choice"><input type="radio" name="rating" value="1"><span aria-hidden="true">👍</span> Boa</label>
<label class="choice"><input type="radio" name="rating" value="0"><span aria-hidden="true">➖</span> Neutra</label>
<label class="choice"><input type="radio" name="rating" value="-1"><span aria-hidden="true">👎</span> Ruim</label>
</fieldset>
<label for="comment">Comentário <span class="muted">(opcional)</span></label>
<textarea id="comment" rows="3" maxlength="10000"></textarea>
<details id="edited-box">
<summary>Texto editado <span class="muted">(opcional)</span></summary>
<label for="edited" class="visually-hidden">Texto editado da minuta</label>
<textarea id="edited" rows="14" spellcheck="false">
{_e(view.document_md)}</textarea>
<p class="muted small">Só é enviado se você alterar o texto.</p>
</details>
<button type="submit" id="send" class="primary">Enviar revisão</button>
<p id="status" class="status" role="status" aria-live="polite"></p>
</form>
</aside>
</div>
<div id="source-popover" class="popover" popover role="dialog" aria-labelledby="source-popover-title">
<div class="popover-head"><h2 id="source-popover-title" tabindex="-1">Fonte</h2>
<button type="button" class="close" popovertarget="source-popover" popovertargetaction="hide">Fechar</button></div>
<div id="source-popover-body"></div>
</div>
<script type="application/json" id="review-data">{_json_for_script(data)}</script>
<script nonce="{nonce}">{_static("review.js")}</script>
</body>
</html>
"""
