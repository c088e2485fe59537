"""The review page in a real browser (Debian chromium + chromium-driver, headless, through selenium).

A small local server stands in for the feedback function's review routes: GET /review/{run_id}?token=…
checks the signed token and serves `page.render` with `page.response_headers`; POST
/review/{run_id}/feedback checks the Bearer review token and hands the JSON to a recorder. The browser
selects text through the DOM Selection/Range API, drives the controls with the keyboard, and the
offsets it posts must slice `document_md` (Python, code points) to exactly the selected sentence.

`HARVEY_REVIEW_SCREENSHOT=docs/review-page.png` makes the demo test save its screenshot there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from harvey.review import links, page

SECRET = b"review-secret-for-the-browser-tests-0123456789"
TENANT = "0b6f1c56-2a43-4f8e-9c1e-8d2f3a4b5c6d"
WAIT_S = 10

# Records CSP violations from the first script of every document (CDP-injected scripts are not subject to CSP).
CSP_PROBE = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
)
SELECT = """
const [startNeedle, endNeedle] = arguments;
const walker = document.createTreeWalker(document.getElementById("draft"), NodeFilter.SHOW_TEXT);
let start = null, end = null, node;
while ((node = walker.nextNode())) {
  if (!start && node.data.includes(startNeedle)) start = [node, node.data.indexOf(startNeedle)];
  if (start && node.data.includes(endNeedle)) { end = [node, node.data.indexOf(endNeedle) + endNeedle.length]; break; }
}
const range = document.createRange();
range.setStart(...start);
range.setEnd(...end);
const selection = document.getSelection();
selection.removeAllRanges();
selection.addRange(range);
return selection.toString();
"""


@dataclass
class Posted:
    tenant_id: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class ReviewServer:
    """The review routes as the feedback function is to serve them (see the module docstring)."""

    views: dict[str, page.ReviewView]
    record: Callable[[str, dict[str, Any], dict[str, str]], str] = lambda tenant, body, headers: str(uuid.uuid4())
    mangle: Callable[[str], str] = lambda html: html
    posted: list[Posted] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _tenant(self, run_id: str, token: str) -> str | None:
                try:
                    return links.verify(SECRET, token, run_id)
                except links.TokenInvalid:
                    self._send(401, b"{}", {"Content-Type": "application/json"})
                except links.TokenExpired:
                    self._send(403, b"{}", {"Content-Type": "application/json"})
                return None

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                if len(parts) != 2 or parts[0] != "review" or parts[1] not in server.views:
                    return self._send(404, b"", {})
                token = parse_qs(url.query).get("token", [""])[0]
                if self._tenant(parts[1], token) is None:
                    return None
                nonce = page.new_nonce()
                html = server.mangle(page.render(server.views[parts[1]], token, nonce))
                return self._send(200, html.encode("utf-8"), page.response_headers(nonce))

            def do_POST(self) -> None:
                parts = urlsplit(self.path).path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "review" or parts[2] != "feedback":
                    return self._send(404, b"", {})
                auth = self.headers.get("Authorization", "")
                tenant = self._tenant(parts[1], auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else "")
                if tenant is None:
                    return None
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.posted.append(Posted(tenant, body, headers))
                feedback_id = server.record(tenant, body, headers)
                answer = json.dumps({"id": feedback_id, "run_id": body["run_id"]}).encode()
                return self._send(201, answer, {"Content-Type": "application/json"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, run_id: str, token: str | None = None) -> str:
        token = token or links.mint(SECRET, TENANT, run_id, 3600)
        return f"http://127.0.0.1:{self.httpd.server_port}/review/{run_id}?token={token}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None or importlib.util.find_spec("selenium") is None:
        message = "needs Debian chromium and chromium-driver (`make tools`) and selenium (requirements.lock)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs them: a skip there would hide a missing install step
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1360,1000",
        "--force-device-scale-factor=1",
        "--lang=pt-BR",
        "--disable-gpu",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_PROBE})
    yield driver
    driver.quit()


def open_page(browser: Any, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop what earlier tests logged
    browser.get(url)
    WebDriverWait(browser, WAIT_S).until(lambda d: d.execute_script("return document.documentElement.dataset.ready"))


def problems(browser: Any) -> list[str]:
    """CSP violations the page met and anything the console logged as an error."""
    violations = browser.execute_script("return window.__csp")
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    return [*violations, *severe]


def wait_text(browser: Any, element_id: str, needle: str) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, WAIT_S).until(lambda d: needle in d.find_element("id", element_id).text)
    return browser.find_element("id", element_id).text


def screenshot(browser: Any, path: Path) -> Path:
    """The page from its top at 80% zoom (1600 x 1320 CSS pixels in a 1280 x 1056 picture), with the
    first source of "Do Direito" open; copied to HARVEY_REVIEW_SCREENSHOT when that is set."""
    metrics = {"width": 1600, "height": 1320, "deviceScaleFactor": 0.8, "mobile": False}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        browser.execute_script("window.scrollTo(0, 0); document.getElementById('panel').scrollTo(0, 0)")
        cites = browser.find_elements("css selector", "#draft button.cite")
        cites[min(1, len(cites) - 1)].click()
        assert browser.find_element("id", "source-popover").is_displayed()
        browser.save_screenshot(str(path))
        browser.find_element("css selector", "#source-popover .close").click()
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    if target := os.environ.get("HARVEY_REVIEW_SCREENSHOT"):
        shutil.copyfile(path, target)
    return path


# Before the sentence the test selects: astral characters (two UTF-16 units each), a ZWJ sequence, accents,
# emphasis markers and CR LF line breaks (which an HTML parser folds into LF unless they are written as &#13;).
NOTIFICACAO = (
    "# Notificação extrajudicial\n\n"
    "## Dos fatos\n\n"
    "A notificante, Maria José Conceição 👩‍⚖️, é titular da conta nº 12.345-6 no Banco Ação S.A. 🏦 desde "
    "março de 2019 [1]. Emoji fora do plano básico 𝔸𝔹, acentos ção, é, ü e **negrito** antes\r\ndo\r\ntrecho. "
    "Conforme o art. 42 [1], o consumidor cobrado em quantia indevida tem direito à repetição do indébito em "
    "dobro. A cobrança repetiu-se por seis meses 📅 [2].\n\n"
    "## Referências\n\n"
    "[1] CDC, art. 42.\n\n"
    "[2] Extrato bancário.\n"
)
SENTENCE = (
    "Conforme o art. 42 [1], o consumidor cobrado em quantia indevida tem direito à repetição do indébito em dobro."
)


def notificacao_view(run_id: str) -> page.ReviewView:
    result = {
        "document_md": NOTIFICACAO,
        "citations": [
            {
                "n": 1,
                "label": "CDC, art. 42",
                "title": "Código de Defesa do Consumidor",
                "excerpt": "Parágrafo único. O consumidor cobrado em quantia indevida tem direito à repetição.",
            },
            {
                "n": 2,
                "label": "Extrato bancário",
                "title": "Extrato de março a agosto",
                "excerpt": "Tarifa de pacote de serviços — R$ 39,90 — seis lançamentos.",
            },
        ],
        "faithfulness_report": {
            "score": 0.5,
            "sentences": [
                {
                    "text": "A cobrança repetiu-se por seis meses 📅 [2].",
                    "citations": [2],
                    "supported": False,
                    "support_score": 0.21,
                    "flags": ["number_missing"],
                },
            ],
        },
    }
    return page.view_from_result(run_id, result, doc_type="notificacao")


def test_a_selection_after_accents_and_emoji_posts_its_exact_code_points(browser):
    from harvey.store import feedback
    from selenium.webdriver.common.keys import Keys

    run_id = str(uuid.uuid4())
    server = ReviewServer({run_id: notificacao_view(run_id)})
    try:
        open_page(browser, server.url(run_id))
        selected = browser.execute_script(SELECT, "Conforme o art. 42", "em dobro.")
        assert selected == SENTENCE
        wait_text(browser, "passage-where", "selecionado")
        assert browser.find_element("id", "passage").get_attribute("value") == SENTENCE

        label = browser.find_element("id", "mark-label")
        label.send_keys("c")  # keyboard type-ahead: "citação errada"
        label.send_keys(Keys.TAB)
        browser.switch_to.active_element.send_keys("Citar o parágrafo único do art. 42 🙂")
        browser.switch_to.active_element.send_keys(Keys.TAB)
        assert browser.switch_to.active_element.get_attribute("id") == "mark-add"
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        wait_text(browser, "marks", "citação errada")

        browser.find_element("id", "missing-raw").send_keys("CDC, art. 42, parágrafo único", Keys.ENTER)
        wait_text(browser, "missing", "parágrafo único")
        browser.find_element("css selector", 'input[name="rating"][value="-1"]').send_keys(Keys.SPACE)
        browser.find_element("id", "comment").send_keys("Revisar a fundamentação.")
        browser.find_element("id", "send").send_keys(Keys.ENTER)
        assert "Revisão registrada" in wait_text(browser, "status", "registrada")

        (posted,) = server.posted
        assert posted.tenant_id == TENANT
        assert posted.headers["authorization"].startswith("Bearer h1.")
        assert len(posted.headers["idempotency-key"]) == 32
        (span,) = posted.body["error_spans"]
        assert NOTIFICACAO[span["start"] : span["end"]] == SENTENCE
        start = NOTIFICACAO.index(SENTENCE)
        assert (span["start"], span["end"]) == (start, start + len(SENTENCE))
        assert span["start"] != len(NOTIFICACAO[: span["start"]].encode("utf-16-le")) // 2  # UTF-16 would differ
        assert span["label"] == "citação errada" and span["suggestion"] == "Citar o parágrafo único do art. 42 🙂"
        assert posted.body["rating"] == -1 and posted.body["comment"] == "Revisar a fundamentação."
        assert posted.body["missing_sources"] == [{"raw": "CDC, art. 42, parágrafo único", "class": "legislacao"}]
        assert "edited_text_md" not in posted.body  # unchanged text is not an edit
        assert posted.body["tags"] == [page.TAG]
        feedback.parse(posted.body)  # exactly what POST / of the feedback function accepts
        assert problems(browser) == []
    finally:
        server.close()


def test_citation_popovers_open_with_their_source_and_close_with_escape(browser):
    from selenium.webdriver.common.keys import Keys

    run_id = str(uuid.uuid4())
    server = ReviewServer({run_id: notificacao_view(run_id)})
    try:
        open_page(browser, server.url(run_id))
        popover = browser.find_element("id", "source-popover")
        assert not popover.is_displayed()
        cites = browser.find_elements("css selector", "#draft button.cite")
        assert [c.text for c in cites] == ["[1]", "[1]", "[2]", "[1]", "[2]"]
        cites[2].send_keys(Keys.ENTER)
        assert popover.is_displayed()
        assert "Extrato bancário" in popover.text and "R$ 39,90" in popover.text
        assert cites[2].get_attribute("aria-expanded") == "true"
        assert browser.switch_to.active_element.get_attribute("id") == "source-popover-title"
        box, button = popover.rect, cites[2].rect
        assert abs(box["y"] - (button["y"] + button["height"])) < 20 or abs(box["y"] + box["height"] - button["y"]) < 20
        browser.switch_to.active_element.send_keys(Keys.ESCAPE)
        assert not popover.is_displayed()
        assert cites[2].get_attribute("aria-expanded") == "false"
        assert browser.switch_to.active_element == cites[2]  # focus goes back to the marker
        cites[0].click()
        assert "CDC, art. 42" in popover.text and "Parágrafo único" in popover.text
        browser.find_element("css selector", "#source-popover .close").click()
        assert not popover.is_displayed()
        unsupported = browser.find_elements("css selector", "#draft mark.claim.unsupported")
        highlighted = "".join(m.get_attribute("textContent") for m in unsupported)
        assert highlighted == "A cobrança repetiu-se por seis meses 📅 [2]."
        assert "número, valor ou prazo" in unsupported[0].get_attribute("title")
        assert problems(browser) == []
    finally:
        server.close()


def test_a_typed_passage_is_found_in_the_draft_and_a_flagged_sentence_marked_in_one_step(browser):
    """Without a mouse: the passage typed with other whitespace than the draft's is found, and
    "Marcar esta frase" takes a flagged sentence's offsets from the report."""
    from selenium.webdriver.common.keys import Keys

    run_id = str(uuid.uuid4())
    server = ReviewServer({run_id: notificacao_view(run_id)})
    try:
        open_page(browser, server.url(run_id))
        typed = "antes do trecho. Conforme o art. 42"  # the draft has CR LF where this has spaces
        browser.find_element("id", "passage").send_keys(typed)
        wait_text(browser, "passage-where", "encontrado")
        start = NOTIFICACAO.index("antes\r\ndo")
        assert browser.find_element("id", "passage").get_attribute("data-span") == f"{start}-{start + 37}"
        assert NOTIFICACAO[start : start + 37].split() == typed.split()
        browser.find_element("id", "mark-add").send_keys(Keys.ENTER)
        browser.find_element("css selector", '[data-mark-claim="0"]').send_keys(Keys.ENTER)
        assert browser.switch_to.active_element.get_attribute("id") == "mark-label"
        browser.switch_to.active_element.send_keys(Keys.TAB, Keys.TAB, Keys.ENTER)  # suggestion, then the button
        wait_text(browser, "marks", "afirmação sem suporte")
        browser.find_element("css selector", 'input[name="rating"][value="0"]').send_keys(Keys.SPACE)
        browser.find_element("id", "send").send_keys(Keys.ENTER)
        wait_text(browser, "status", "registrada")
        claim = "A cobrança repetiu-se por seis meses 📅 [2]."
        assert [(s["start"], s["end"], s["label"]) for s in server.posted[0].body["error_spans"]] == [
            (start, start + 37, page.ERROR_LABELS[0]),  # the label left as it was
            (NOTIFICACAO.index(claim), NOTIFICACAO.index(claim) + len(claim), "afirmação sem suporte"),
        ]
        assert server.posted[0].body["rating"] == 0
        assert problems(browser) == []
    finally:
        server.close()


def test_every_control_is_reached_by_tab_with_a_visible_focus(browser):
    from selenium.webdriver.common.keys import Keys

    run_id = str(uuid.uuid4())
    server = ReviewServer({run_id: notificacao_view(run_id)})
    try:
        open_page(browser, server.url(run_id))
        reached: list[str] = []
        body = browser.find_element("tag name", "body")
        body.send_keys(Keys.TAB)
        for _ in range(60):
            element = browser.switch_to.active_element
            reached.append(element.get_attribute("id") or element.get_attribute("class") or element.tag_name)
            if reached[-1] == "send":
                assert element.value_of_css_property("outline-style") != "none"
                break
            element.send_keys(Keys.TAB)
        wanted = [
            "skip",
            "cite",
            "passage",
            "mark-label",
            "mark-suggestion",
            "mark-add",
            "missing-raw",
            "missing-class",
            "missing-add",
            "comment",
            "summary",
            "send",
        ]
        assert [w for w in wanted if w in reached] == wanted, reached
        assert reached.count("cite") == 5
    finally:
        server.close()


def test_a_bad_or_expired_link_gets_no_page(browser):
    run_id = str(uuid.uuid4())
    server = ReviewServer({run_id: notificacao_view(run_id)})
    try:
        expired = links.mint(SECRET, TENANT, run_id, 60, now=1_000_000)
        other_run = links.mint(SECRET, TENANT, str(uuid.uuid4()), 3600)
        for token, status in ((expired, 403), (other_run, 401), ("h1.x.y", 401)):
            browser.get(server.url(run_id, token))
            assert browser.execute_script("return document.getElementById('draft')") is None, status
    finally:
        server.close()


def test_the_csp_probe_sees_a_script_without_the_nonce(browser):
    """The negative control for `problems`: an injected inline script is refused and reported."""
    run_id = str(uuid.uuid4())
    injected = "<script>document.title='x'</script></body>"
    server = ReviewServer({run_id: notificacao_view(run_id)}, mangle=lambda html: html.replace("</body>", injected))
    try:
        open_page(browser, server.url(run_id))
        assert browser.title != "x"
        assert any("script-src" in p for p in problems(browser))
    finally:
        server.close()


def test_a_demo_run_reviewed_in_the_browser_is_stored_with_exact_offsets(browser, indexed_tenant, tmp_path):
    """A real run (pipeline, runs row) → page → marks by keyboard → the feedback library → PostgreSQL."""
    from harvey.cli.demo import DRAFTS
    from harvey.drafting import runs
    from harvey.store import db, feedback
    from selenium.webdriver.common.keys import Keys

    tenant, _ = indexed_tenant
    run_id = runs.start_sync(tenant, dict(DRAFTS[0]), None).run_id
    row = runs.get(tenant.id, run_id)
    view = page.view_from_result(run_id, row["result"], doc_type=row["doc_type"])
    document_md = view.document_md
    index, claim = next((i, c) for i, c in enumerate(view.claims) if c.start is not None and not c.supported)

    def record(tenant_id: str, body: dict[str, Any], headers: dict[str, str]) -> str:
        return feedback.record(
            tenant_id, body, dedupe_key=f"idem:{headers['idempotency-key']}", same_body_required=True
        ).id

    server = ReviewServer({run_id: view}, record=record)
    token = links.mint(SECRET, tenant.id, run_id, 3600)
    try:
        open_page(browser, server.url(run_id, token))
        browser.find_element("css selector", f'[data-mark-claim="{index}"]').send_keys(Keys.ENTER)
        assert browser.switch_to.active_element.get_attribute("id") == "mark-label"
        browser.find_element("id", "mark-suggestion").send_keys("Fundamentar o pedido com o CDC, art. 6º, VIII.")
        browser.find_element("id", "mark-add").send_keys(Keys.ENTER)
        wait_text(browser, "marks", "afirmação sem suporte")
        shot = screenshot(browser, tmp_path / "review-page.png")
        assert shot.stat().st_size < 300_000
        browser.find_element("id", "missing-raw").send_keys("CDC, art. 6º, VIII", Keys.ENTER)
        browser.find_element("css selector", 'input[name="rating"][value="1"]').send_keys(Keys.SPACE)
        browser.find_element("css selector", "#edited-box summary").send_keys(Keys.ENTER)
        browser.find_element("id", "edited").send_keys(Keys.CONTROL, Keys.END)
        browser.find_element("id", "edited").send_keys("\nRevisado pelo escritório.")
        browser.find_element("id", "send").send_keys(Keys.ENTER)
        assert "Revisão registrada" in wait_text(browser, "status", "registrada")
        assert problems(browser) == []
    finally:
        server.close()

    (posted,) = server.posted
    assert posted.tenant_id == tenant.id
    stored = db.one(
        "SELECT run_id, rating, error_spans, missing_sources, edited_text_md, tags FROM feedback_events "
        "WHERE tenant_id = CAST(:t AS uuid) AND run_id = CAST(:r AS uuid)",
        t=tenant.id,
        r=run_id,
    )
    assert stored is not None and stored["rating"] == 1 and stored["tags"] == [page.TAG]
    (span,) = stored["error_spans"]
    assert (span["start"], span["end"]) == (claim.start, claim.end)
    assert page._searchable(document_md[span["start"] : span["end"]])[0] == page._searchable(claim.text)[0]
    assert span["label"] == "afirmação sem suporte"
    assert stored["missing_sources"] == [{"raw": "CDC, art. 6º, VIII", "class": "legislacao"}]
    assert stored["edited_text_md"] == document_md.replace("\r\n", "\n") + "\nRevisado pelo escritório."


def test_a_generate_review_url_opens_through_the_feedback_function_and_its_marks_are_stored(
    browser, indexed_tenant, settings_env
):
    """The whole path: generate answers with `review_url`; the feedback function serves that page; the
    lawyer's mark, posted by the page to the same function, is a feedback row with the exact offsets."""
    from functions_framework import create_app
    from harvey.cli.demo import DRAFTS
    from harvey.store import db
    from selenium.webdriver.common.keys import Keys
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, create_app("feedback", "functions/feedback/main.py"), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings_env(HARVEY_REVIEW_SECRET=SECRET.decode(), HARVEY_REVIEW_BASE_URL=f"http://127.0.0.1:{server.server_port}")
    tenant, key = indexed_tenant
    generate = create_app("generate", "functions/generate/main.py").test_client()
    answer = generate.post("/", json=dict(DRAFTS[0]), headers={"Authorization": f"Bearer {key}"}).get_json()
    run_id, document_md = answer["run_id"], answer["document_md"]
    view = page.view_from_result(run_id, answer)
    index, claim = next((i, c) for i, c in enumerate(view.claims) if c.start is not None and not c.supported)
    try:
        open_page(browser, answer["review_url"])
        browser.find_element("css selector", f'[data-mark-claim="{index}"]').send_keys(Keys.ENTER)
        browser.find_element("id", "mark-add").send_keys(Keys.ENTER)
        wait_text(browser, "marks", "afirmação sem suporte")
        browser.find_element("css selector", 'input[name="rating"][value="-1"]').send_keys(Keys.SPACE)
        browser.find_element("id", "send").send_keys(Keys.ENTER)
        assert "registrada" in wait_text(browser, "status", "registrada")
        assert problems(browser) == []
        tampered = answer["review_url"][:-2] + ("AA" if not answer["review_url"].endswith("AA") else "BB")
        browser.get(tampered)
        assert "401" in browser.page_source or "inválid" in browser.page_source.lower()
    finally:
        server.shutdown()
    stored = db.one(
        "SELECT rating, error_spans FROM feedback_events "
        "WHERE tenant_id = CAST(:t AS uuid) AND run_id = CAST(:r AS uuid)",
        t=tenant.id,
        r=run_id,
    )
    assert stored is not None and stored["rating"] == -1
    (span,) = stored["error_spans"]
    assert (span["start"], span["end"]) == (claim.start, claim.end)
    assert page._searchable(document_md[span["start"] : span["end"]])[0] == page._searchable(claim.text)[0]
