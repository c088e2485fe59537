"""The review page: escaped draft whose text pieces carry exact code-point offsets, its sources,
its flagged sentences, and a Content-Security-Policy that allows nothing but the page itself."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
from harvey.faithfulness.text import split_markdown
from harvey.review import page
from hypothesis import given, settings
from hypothesis import strategies as st

NONCE = "n0nce-For-The-Tests_123"
RUN = "7d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6"
VOID = {"meta", "link", "hr", "br", "img", "input", "source", "area", "base", "col", "embed", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def find(self, **attrs: str) -> list[Node]:
        return [n for n in self.walk() if all(n.attrs.get(k) == v for k, v in attrs.items())]

    def by_id(self, element_id: str) -> Node:
        (found,) = self.find(id=element_id)
        return found


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(document: str) -> Node:
    """The page as a browser's parser builds it: its input stream folds CR LF and lone CR into LF, and
    text NULs are dropped (html.parser does neither, so this does it first)."""
    tree = _Tree()
    tree.feed(document.replace("\r\n", "\n").replace("\r", "\n").replace("\0", ""))
    tree.close()
    assert tree.stack == [tree.root], "every element is closed"
    return tree.root


def textarea_value(node: Node) -> str:
    """What a browser puts in the textarea: the HTML parser drops one newline right after <textarea>
    (html.parser does not, so this does it)."""
    text = node.text()
    return text[1:] if text.startswith("\n") else text


def pieces(root: Node) -> list[tuple[int, str]]:
    """(data-s, text) of every draft piece, in document order."""
    found = [n for n in root.by_id("draft").walk() if "data-s" in n.attrs]
    for piece in found:
        assert all(isinstance(c, str) for c in piece.children), "a piece holds text only"
    return [(int(n.attrs["data-s"]), n.text()) for n in found]


DRAFT = (
    "# PETIÇÃO INICIAL\n\n"
    "## Dos Fatos\n\n"
    "O autor, José Conceição, é correntista 🏦 do Banco Ação S.A. desde 2019.\n"
    "Foi cobrado por tarifa **que nunca contratou** [1].\n\n"
    "## Do Direito\n\n"
    "A cobrança indevida gera repetição em dobro [1, 2]. O prazo é de *noventa* dias 𝔸 [2].\n\n"
    "- item com marcador e acentuação: ação, coração\n"
    "a) pedido de inversão do ônus da prova;\n\n"
    "---\n\n"
    "## Referências\n\n"
    "[1] CDC, art. 42.\n\n"
    "[2] CDC, art. 26.\n"
)


def _sentence(text: str, *, supported: bool, citations: list[int], flags: list[str] | None = None) -> dict:
    return {
        "text": text,
        "citations": citations,
        "supported": supported,
        "support_score": 0.2 if citations else 0.0,
        "screen": supported,
        "judge": None,
        "flags": flags or [],
    }


RESULT = {
    "run_id": RUN,
    "status": "succeeded",
    "document_md": DRAFT,
    "citations": [
        {
            "n": 1,
            "source_id": "CDC:art42",
            "title": "Código de Defesa do Consumidor",
            "label": "CDC, art. 42",
            "excerpt": "Art. 42. O consumidor cobrado em quantia indevida tem direito à repetição do indébito…",
            "score": 0.8,
            "vigencia": "vigente",
            "vigencia_atos": [],
        },
        {
            "n": 2,
            "source_id": "CDC:art26",
            "title": "Código de Defesa do Consumidor",
            "label": "CDC, art. 26",
            "excerpt": "Art. 26. O direito de reclamar pelos vícios aparentes caduca em noventa dias…",
            "score": 0.7,
            "vigencia": "questionada",
            "vigencia_atos": [{"tipo": "questionamento", "ato": "ADI 1234", "dispositivos": ["caput"]}],
        },
    ],
    "faithfulness_report": {
        "score": 0.5,
        "sentences": [
            _sentence(
                "Foi cobrado por tarifa que nunca contratou [1].",
                supported=False,
                citations=[1],
                flags=["number_missing"],
            ),
            _sentence("A cobrança indevida gera repetição em dobro [1, 2].", supported=True, citations=[1, 2]),
            _sentence("O prazo é de noventa dias 𝔸 [2].", supported=True, citations=[2], flags=["questionada"]),
            _sentence("pedido de inversão do ônus da prova;", supported=False, citations=[]),
        ],
    },
}


@pytest.fixture(scope="module")
def view() -> page.ReviewView:
    return page.view_from_result(RUN, RESULT, doc_type="peticao_inicial")


@pytest.fixture(scope="module")
def root(view) -> Node:
    return parse(page.render(view, "h1.token.mac", NONCE))


def data_block(root: Node) -> dict:
    return json.loads(root.by_id("review-data").text())


def test_every_piece_is_exactly_its_slice_of_document_md(root):
    found = pieces(root)
    assert len(found) > 20
    for start, text in found:
        assert DRAFT[start : start + len(text)] == text  # code points: Python slicing, emoji and 𝔸 included
    starts = [s for s, _ in found]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


def test_markdown_syntax_is_left_out_of_the_pieces_and_all_prose_is_in(root):
    covered = set()
    for start, text in pieces(root):
        covered.update(range(start, start + len(text)))
    uncovered = "".join(ch for i, ch in enumerate(DRAFT) if i not in covered and not ch.isspace())
    assert uncovered == "###****##**----##"  # heading hashes, emphasis markers, the bullet, the rule
    draft = root.by_id("draft")
    assert [n.tag for n in draft.walk() if n.tag in ("h2", "h3", "strong", "em", "hr")] == [
        "h2",
        "h3",
        "strong",
        "h3",
        "em",
        "hr",
        "h3",
    ]


def test_every_report_sentence_is_located(view):
    sentences = split_markdown(DRAFT)
    for sentence, place in zip(sentences, page.locate(DRAFT, sentences), strict=True):
        assert place is not None, sentence
        assert page._searchable(DRAFT[place[0] : place[1]])[0] == page._searchable(sentence)[0]


def test_a_repeated_sentence_gets_its_own_place_and_an_absent_one_none():
    text = "Primeira frase aqui. Frase repetida. Outra frase. Frase repetida."
    places = page.locate(text, ["Frase repetida.", "Frase repetida.", "Inexistente."])
    assert places == [(21, 36), (50, 65), None]


def test_every_citation_marker_opens_sources_that_exist(root):
    data = data_block(root)
    buttons = [n for n in root.by_id("draft").walk() if n.tag == "button"]
    markers = [b.text() for b in buttons]
    assert markers == ["[1]", "[1, 2]", "[2]", "[1]", "[2]"]
    for button in buttons:
        numbers = button.attrs["data-cite"].split()
        assert numbers and all(n in data["sources"] for n in numbers)
        assert button.attrs["aria-controls"] == "source-popover" and button.attrs["type"] == "button"
        assert "CDC, art." in button.attrs["aria-label"]
    assert data["sources"]["2"]["excerpt"].startswith("Art. 26.")
    assert data["sources"]["2"]["vigencia"] == "questionada: ADI 1234"


def test_unsupported_and_flagged_sentences_are_marked_with_their_reasons(root, view):
    marks: dict[str, list[Node]] = {}
    for node in root.by_id("draft").walk():
        if node.tag == "mark":
            marks.setdefault(node.attrs["data-claim"], []).append(node)
    assert len(view.claims) == 3  # the supported sentence without flags is not one
    for index, claim in enumerate(view.claims):
        nodes = marks[str(index)]
        assert "".join(n.text() for n in nodes) == DRAFT[claim.start : claim.end].replace("*", "")
        assert {n.attrs["class"] for n in nodes} == {"claim flagged" if claim.supported else "claim unsupported"}
    first = marks["0"][0].attrs["title"]
    assert first.startswith("Afirmação sem suporte:") and "número, valor ou prazo" in first and "[1]" in first
    assert "questionado no STF" in marks["1"][0].attrs["title"]
    assert "sem citação" in marks["2"][0].attrs["title"]
    listed = [li for li in root.walk() if li.tag == "li" and "claim-item" in (li.attrs.get("class") or "")]
    assert len(listed) == 3 and "Sem suporte" in listed[0].text() and "Com alerta" in listed[1].text()


def test_a_hostile_draft_is_shown_as_text():
    hostile = (
        '# Título <script>alert("h1")</script>\n\n'
        'Texto "><img src=x onerror=alert(1)> e </textarea><script>alert(2)</script> [1].\n\n'
        "</script><script>alert(3)</script> <!-- comentário --> &amp; <style>*{}</style>\n"
    )
    result = {
        **RESULT,
        "document_md": hostile,
        "faithfulness_report": {"score": 1.0, "sentences": []},
        "citations": [{**RESULT["citations"][0], "label": '<b onmouseover="x()">CDC</b>'}],
    }
    html = page.render(page.view_from_result(RUN, result), '"></script><script>alert(4)</script>', NONCE)
    root = parse(html)
    scripts = [n for n in root.walk() if n.tag == "script"]
    assert [s.attrs for s in scripts] == [{"type": "application/json", "id": "review-data"}, {"nonce": NONCE}]
    assert not [n for n in root.walk() if n.tag in ("img", "b") or n.tag == "style" and n.attrs != {"nonce": NONCE}]
    assert not [k for n in root.walk() for k in n.attrs if k.startswith("on")]
    draft_text = root.by_id("draft").text()
    assert '<script>alert("h1")</script>' in draft_text and '"><img src=x onerror=alert(1)>' in draft_text
    assert "<!-- comentário --> &amp; <style>" in draft_text
    data = data_block(root)
    assert data["documentMd"] == hostile and data["token"] == '"></script><script>alert(4)</script>'
    assert data["sources"]["1"]["label"] == '<b onmouseover="x()">CDC</b>'
    assert textarea_value(root.by_id("edited")) == hostile  # the textarea, prefilled, still ends where it should


def test_the_textarea_keeps_a_leading_newline():
    result = {**RESULT, "document_md": "\nTexto que começa numa linha vazia.\n"}
    root = parse(page.render(page.view_from_result(RUN, result), "t", NONCE))
    assert textarea_value(root.by_id("edited")) == result["document_md"]


def test_the_page_is_portuguese_self_contained_and_labelled(root):
    (html_node,) = [n for n in root.walk() if n.tag == "html"]
    assert html_node.attrs["lang"] == "pt-BR"
    for node in root.walk():
        for name in ("src", "href", "action"):
            value = node.attrs.get(name)
            assert value is None or value.startswith("#") or value == "data:,", (node.tag, name, value)
    controls = [n for n in root.walk() if n.tag in ("input", "select", "textarea")]
    labelled = {n.attrs.get("for") for n in root.walk() if n.tag == "label"}
    for control in controls:
        if control.attrs.get("type") == "radio":
            continue  # wrapped in their <label>
        assert control.attrs["id"] in labelled, control.attrs
    assert [n.attrs["value"] for n in controls if n.attrs.get("type") == "radio"] == ["1", "0", "-1"]
    assert root.by_id("status").attrs["aria-live"] == "polite"
    options = [n.attrs["value"] for n in root.by_id("mark-label").walk() if n.tag == "option"]
    assert options == list(page.ERROR_LABELS)
    (title,) = [n for n in root.walk() if n.tag == "title"]
    assert title.text() == "Revisão — Petição inicial — Harvey"


def test_content_security_policy_allows_only_the_page_itself():
    policy = page.content_security_policy(NONCE)
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives == {
        "default-src": "'none'",
        "script-src": f"'nonce-{NONCE}'",
        "style-src": f"'nonce-{NONCE}'",
        "connect-src": "'self'",
        "img-src": "'self' data:",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    headers = page.response_headers(NONCE)
    assert headers["Content-Security-Policy"] == policy
    assert headers["Referrer-Policy"] == "no-referrer" and headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("nonce", ["", "short", "abc' 'unsafe-inline'; script-src *", 'x"><script>' * 3])
def test_a_nonce_that_could_widen_the_policy_is_refused(view, nonce):
    with pytest.raises(ValueError):
        page.content_security_policy(nonce)
    with pytest.raises(ValueError):
        page.render(view, "t", nonce)


def test_fresh_nonces_differ_and_are_accepted():
    nonces = {page.new_nonce() for _ in range(20)}
    assert len(nonces) == 20
    for nonce in nonces:
        page.content_security_policy(nonce)


def test_a_withheld_run_has_no_page():
    with pytest.raises(page.NoDocument):
        page.view_from_result(RUN, {**RESULT, "status": "withheld", "document_md": None, "citations": []})


def test_the_feedback_url_is_relative_to_the_page():
    assert page.feedback_path(RUN) == f"{RUN}/feedback"  # /review/{run} + this = /review/{run}/feedback
    assert page.feedback_path("a/b?c") == "a%2Fb%3Fc/feedback"


MARKDOWN_ALPHABET = "ab çé 🏦𝔸#*_-[]1,2;e.\n\r\t\u2028\0>`"


@given(st.text(alphabet=MARKDOWN_ALPHABET, max_size=120))
@settings(max_examples=300, deadline=None)
def test_any_text_renders_as_exact_disjoint_pieces(document_md):
    """Whatever the model wrote (CRLF, lone CR, U+2028, unbalanced emphasis, empty headings), each
    piece is its exact slice and pieces never overlap: the script's offsets depend on nothing else."""
    view = page.ReviewView(RUN, document_md, (), (), "x/feedback")
    end = -1
    for start, text in pieces(parse(page.render(view, "t", NONCE))):
        assert len(text) == len(document_md[start : start + len(text)])  # NUL shows as U+FFFD
        assert text == document_md[start : start + len(text)].replace("\0", "\ufffd")
        assert text and start >= end
        end = start + len(text)


def test_claims_found_out_of_order_or_overlapping_are_listed_but_drawn_once():
    text = "Uma frase sem fonte. Outra frase sem fonte."
    claims = (
        page.Claim("Outra frase sem fonte.", False, ("x",), 21, 43),
        page.Claim("Uma frase sem fonte.", False, ("x",), 0, 20),
        page.Claim("frase sem fonte. Outra", False, ("x",), 4, 26),
    )
    root = parse(page.render(page.ReviewView(RUN, text, (), claims, "x/feedback"), "t", NONCE))
    drawn = {n.attrs["data-claim"]: n.text() for n in root.by_id("draft").walk() if n.tag == "mark"}
    assert drawn == {"0": "Outra frase sem fonte.", "1": "Uma frase sem fonte."}
    assert len([n for n in root.walk() if n.tag == "li" and "claim-item" in n.attrs.get("class", "")]) == 3
