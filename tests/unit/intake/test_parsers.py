"""The intake parsers on fixtures made from known statute text (tests/fixtures/intake/make_fixtures.py).

Text is compared by character error rate against each fixture's .expected.txt: 0 for born-digital files,
under a measured bound for OCR (0.24% on scanned.pdf at 200 DPI; asserted below 2%).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from harvey.intake import Block, ParsedDocument, UnreadableDocument, UnsupportedType, parse, sniff
from harvey.intake import pdf as pdf_parser
from harvey.intake.measure import character_error_rate, levenshtein
from harvey.intake.ocr import read_image
from harvey.intake.word import check_archive

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "intake"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
OCR_CER_BOUND = 0.02


def has_portuguese_ocr() -> bool:
    if shutil.which("tesseract") is None:
        return False
    listed = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, check=False)
    return "por" in listed.stdout.split()


needs_ocr = pytest.mark.skipif(
    not has_portuguese_ocr(), reason="tesseract with the Portuguese model is not installed (make tools installs it)"
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def expected(name: str) -> str:
    return (FIXTURES / f"{name}.expected.txt").read_text(encoding="utf-8")


def headings(document: ParsedDocument) -> list[str]:
    return [block.text for block in document.blocks if block.kind == "heading"]


def block_starting(document: ParsedDocument, prefix: str) -> Block:
    return next(block for block in document.blocks if block.text.startswith(prefix))


# PDF


def test_text_pdf_reads_exactly_with_pages_and_heading_paths():
    document = parse(fixture("text.pdf"), PDF)
    assert (document.parser, document.pages, document.ocr_pages) == ("pypdfium2", 2, 0)
    assert character_error_rate(expected("text"), document.text) == 0
    assert headings(document) == [
        "TÍTULO I Dos Direitos do Consumidor",
        "CAPÍTULO I Disposições Gerais",
        "CAPÍTULO III Dos Direitos Básicos do Consumidor",
    ]
    first = block_starting(document, "Art. 1°")
    assert (first.page, first.kind) == (1, "paragraph")
    assert first.heading_path == ("TÍTULO I Dos Direitos do Consumidor", "CAPÍTULO I Disposições Gerais")
    sixth = block_starting(document, "Art. 6")
    assert sixth.page == 2
    assert sixth.heading_path == (
        "TÍTULO I Dos Direitos do Consumidor",
        "CAPÍTULO III Dos Direitos Básicos do Consumidor",
    )
    assert block_starting(document, "§ 2°").text.endswith("relações de caráter trabalhista.")
    assert all(block.page in (1, 2) for block in document.blocks)


def test_a_pdf_locked_only_against_editing_opens():
    document = parse(fixture("owner_locked.pdf"), PDF)
    assert character_error_rate(expected("owner_locked"), document.text) == 0


@needs_ocr
def test_scanned_pdf_is_read_by_ocr_page_by_page():
    document = parse(fixture("scanned.pdf"), PDF)
    assert (document.parser, document.pages, document.ocr_pages) == ("pypdfium2+tesseract", 2, 2)
    assert character_error_rate(expected("scanned"), document.text) < OCR_CER_BOUND
    assert {block.page for block in document.blocks} == {1, 2}
    assert "TÍTULO IX Da Responsabilidade Civil" in headings(document)
    article = block_starting(document, "Art. 927")
    assert article.heading_path[-1] == "TÍTULO IX Da Responsabilidade Civil"
    assert "repará-lo" in article.text
    small_print = [block for block in document.blocks if block.text.startswith("Parágrafo único. Haverá")]
    assert len(small_print) == 2, "an 8 pt paragraph that Tesseract splits by a blank line stays one block"
    stamp = [block for block in document.blocks if "assinado eletronicamente" in block.text]
    assert [block.page for block in stamp] == [2]


def test_scanned_pdf_without_ocr_keeps_only_the_stamp_layer():
    document = parse(fixture("scanned.pdf"), PDF, ocr=False)
    assert (document.parser, document.ocr_pages) == ("pypdfium2", 0)
    assert [block.text for block in document.blocks] == [
        "Documento digitalizado e assinado eletronicamente. Página 2 de 2."
    ]


def blank_pdf() -> bytes:
    """One empty page; PDFium rebuilds the missing cross-reference table."""
    return (
        b"%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
        b"2 0 obj <</Type /Pages /Kids [3 0 R] /Count 1>> endobj\n"
        b"3 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]>> endobj\n"
        b"trailer <</Root 1 0 R>>\n%%EOF\n"
    )


@needs_ocr
def test_a_pdf_without_text_even_by_ocr_is_unreadable():
    with pytest.raises(UnreadableDocument, match="not even by OCR"):
        parse(blank_pdf(), PDF)


def test_a_pdf_without_text_layer_and_ocr_off_says_so():
    with pytest.raises(UnreadableDocument, match="OCR was not run"):
        parse(blank_pdf(), PDF, ocr=False)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("encrypted.pdf", "protected by a password"), ("truncated.pdf", "truncated or corrupt")],
)
def test_bad_pdfs_are_unreadable_with_a_reason(name, reason):
    with pytest.raises(UnreadableDocument, match=reason):
        parse(fixture(name), PDF)


def test_a_pdf_whose_end_is_missing_is_refused_before_pdfium_repairs_it():
    with pytest.raises(UnreadableDocument, match="truncated"):
        parse(fixture("text.pdf")[:-20], PDF)
    with pytest.raises(UnreadableDocument, match="truncated or corrupt"):
        parse(b"%PDF-1.7\nnot a PDF body\n%%EOF\n", PDF)


def test_page_cap(monkeypatch):
    monkeypatch.setattr(pdf_parser, "MAX_PAGES", 1)
    with pytest.raises(UnreadableDocument, match="2 pages, more than the limit of 1"):
        parse(fixture("text.pdf"), PDF)


@needs_ocr
def test_ocr_time_per_page_is_capped():
    import pypdfium2

    document = pypdfium2.PdfDocument(fixture("scanned.pdf"))
    page = document[0]
    image, dpi = pdf_parser.render(page)
    page.close()
    document.close()
    with pytest.raises(UnreadableDocument, match="Page 1 could not be read by OCR within"):
        read_image(image, dpi=dpi, page=1, timeout_s=0.01)


def test_usable_text_layer_rule():
    line = "Art. 1° O presente código estabelece normas de proteção e defesa do consumidor."
    assert pdf_parser.usable(line, image_share=0.0)
    assert not pdf_parser.usable("Página 1", image_share=0.0)
    assert not pdf_parser.usable("\ue000\ue001" * 40 + line, image_share=0.0), "glyphs without Unicode"
    assert not pdf_parser.usable(line, image_share=0.9), "a scan under a stamp"
    assert pdf_parser.usable(line * 10, image_share=0.9), "a scan with an OCR text layer of its own"


def test_pdfium_is_used_by_one_thread_at_a_time():
    data, results, errors = fixture("text.pdf"), [], []

    def work():
        try:
            for _ in range(5):
                results.append(parse(data, PDF).text)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 20 and len(set(results)) == 1


# DOCX


def test_docx_headings_paragraphs_table_and_footnote():
    document = parse(fixture("brief.docx"), DOCX)
    assert (document.parser, document.pages, document.ocr_pages) == ("python-docx", 0, 0)
    assert character_error_rate(expected("brief"), document.text) == 0
    assert headings(document) == [
        "TÍTULO V Dos Contratos em Geral",
        "CAPÍTULO I Disposições Gerais",
        "Seção I Preliminares",
    ]
    kinds = [block.kind for block in document.blocks]
    assert kinds == ["heading"] * 3 + ["paragraph", "footnote", "paragraph", "paragraph", "table", "paragraph"]
    footnote = document.blocks[4]
    assert footnote.text.startswith("Redação dada pela Lei nº 13.874, de 2019")
    assert footnote.heading_path == document.blocks[3].heading_path == tuple(headings(document))
    table = next(block for block in document.blocks if block.kind == "table")
    rows = table.text.split("\n")
    assert rows[0] == "Artigo | Regra"
    assert rows[1].startswith("423 | Quando houver no contrato de adesão")
    assert len(rows) == 3
    assert all(block.page is None for block in document.blocks)


W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def minimal_docx(body: str, extra: dict[str, bytes] | None = None) -> bytes:
    members = {
        "[Content_Types].xml": (
            b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            b'<Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" '
            b'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
        ),
        "_rels/.rels": (
            b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            b'<Relationship Id="rId1" Target="word/document.xml" Type="http://schemas.openxmlformats.org/'
            b'officeDocument/2006/relationships/officeDocument"/></Relationships>'
        ),
        "word/document.xml": (
            f'<?xml version="1.0"?><w:document xmlns:w="{W_NS}"><w:body>{body}</w:body></w:document>'
        ).encode(),
        **(extra or {}),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_docx_reads_tracked_insertions_and_content_controls_but_not_deletions():
    body = (
        '<w:p><w:pPr><w:outlineLvl w:val="0"/></w:pPr><w:r><w:t>DO OBJETO</w:t></w:r></w:p>'
        '<w:p><w:r><w:t xml:space="preserve">O prazo é de </w:t></w:r>'
        '<w:del w:id="1" w:author="a"><w:r><w:delText>dez</w:delText></w:r></w:del>'
        '<w:ins w:id="2" w:author="a"><w:r><w:t>trinta</w:t></w:r></w:ins>'
        '<w:r><w:t xml:space="preserve"> dias.</w:t></w:r></w:p>'
        "<w:sdt><w:sdtContent><w:p><w:r><w:t>Cláusula em controle de conteúdo.</w:t></w:r></w:p></w:sdtContent></w:sdt>"
    )
    document = parse(minimal_docx(body), DOCX)
    assert [(block.kind, block.text) for block in document.blocks] == [
        ("heading", "DO OBJETO"),
        ("paragraph", "O prazo é de trinta dias."),
        ("paragraph", "Cláusula em controle de conteúdo."),
    ]
    assert document.blocks[2].heading_path == ("DO OBJETO",)


def test_zip_bomb_is_refused_before_python_docx_opens_it():
    with pytest.raises(UnreadableDocument, match="zip bomb"):
        parse(fixture("bomb.docx"), DOCX)


def test_archive_caps():
    brief = fixture("brief.docx")
    check_archive(brief)
    with pytest.raises(UnreadableDocument, match="more than the limit of 3"):
        check_archive(brief, max_members=3)
    with pytest.raises(UnreadableDocument, match="inflates to more than 0 MiB"):
        check_archive(brief, max_inflated=1000)
    body = "<w:p><w:r><w:t>texto</w:t></w:r></w:p>"
    with pytest.raises(UnreadableDocument, match="hides an archive in word/media/image1.png"):
        parse(minimal_docx(body, {"word/media/image1.png": brief}), DOCX)
    assert parse(minimal_docx(body, {"word/embeddings/Planilha1.xlsx": brief}), DOCX).text == "texto"
    with pytest.raises(UnreadableDocument, match="unsafe file names"):
        parse(minimal_docx(body, {"../../etc/cron.d/x": b"x"}), DOCX)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (fixture("brief.docx")[:5000], "not a valid ZIP archive"),
        (minimal_docx("")[:0] + b"PK\x03\x04" + b"\x00" * 40, "not a valid ZIP archive"),
        (b"plain words", "is not a DOCX"),
    ],
)
def test_bad_docx_is_unreadable(data, reason):
    with pytest.raises(UnreadableDocument, match=reason):
        parse(data, DOCX)


def test_a_zip_that_is_not_word_is_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notas.txt", "texto")
    with pytest.raises(UnreadableDocument, match="ZIP archive but not a Word document"):
        parse(out.getvalue(), DOCX)


# HTML


def test_html_page_without_its_chrome():
    document = parse(fixture("page.html"), "text/html")
    assert document.parser == "selectolax"
    assert character_error_rate(expected("page"), document.text) == 0, "windows-1252 read from the meta tag"
    for chrome in ("Portal da Legislação", "Leis Ordinárias", "Buscar", "rastreio", "Emendas", "JavaScript", "DOU"):
        assert chrome not in document.text
    assert headings(document) == [
        "Constituição da República Federativa do Brasil de 1988",
        "TÍTULO I Dos Princípios Fundamentais",
    ]
    soberania = block_starting(document, "I - a soberania")
    assert soberania.heading_path == tuple(headings(document))


def test_html_tables_lists_and_charset_parameter():
    page = (
        "<html><body><article><header><h1>Parecer</h1></header><h2>Dos fatos</h2><div>Texto solto <b>em negrito</b>"
        "<p>Parágrafo.</p></div><ol><li>Primeiro<ul><li>Subitem</li></ul></li></ol>"
        "<table><tr><th>Artigo</th><th>Tema</th></tr><tr><td>421</td><td>Função social</td></tr></table>"
        "<footer>Rodapé do artigo</footer></article><footer>Rodapé do site</footer></body></html>"
    )
    document = parse(page.encode("utf-8"), "text/html; charset=UTF-8")
    assert [(block.kind, block.text) for block in document.blocks] == [
        ("heading", "Parecer"),
        ("heading", "Dos fatos"),
        ("paragraph", "Texto solto em negrito"),
        ("paragraph", "Parágrafo."),
        ("paragraph", "Primeiro"),
        ("paragraph", "Subitem"),
        ("table", "Artigo | Tema\n421 | Função social"),
        ("paragraph", "Rodapé do artigo"),
    ]
    assert document.blocks[-2].heading_path == ("Parecer", "Dos fatos")


def test_deeply_nested_html_does_not_overflow():
    page = "<div>" * 5000 + "fundo" + "</div>" * 5000
    assert parse(page.encode(), "text/html").text == "fundo"


# Plain text and Markdown

STATUTE = (
    "CAPÍTULO I\nDisposições Gerais\n\nArt. 1º Este Código estabelece normas.\nArt. 2º Consumidor é toda pessoa.\n"
)


def test_plain_text_in_utf8_and_in_old_windows_files_reads_the_same():
    utf8 = parse(STATUTE.encode("utf-8"), "text/plain; charset=utf-8")
    cp1252 = parse(STATUTE.encode("cp1252"), "text/plain")
    assert utf8.blocks == cp1252.blocks
    assert [(block.kind, block.text) for block in utf8.blocks] == [
        ("heading", "CAPÍTULO I Disposições Gerais"),
        ("paragraph", "Art. 1º Este Código estabelece normas."),
        ("paragraph", "Art. 2º Consumidor é toda pessoa."),
    ]
    assert utf8.blocks[1].heading_path == ("CAPÍTULO I Disposições Gerais",)


def test_declared_latin1_is_read_as_windows_1252():
    document = parse("“Cláusula” – prazo.".encode("cp1252"), "text/plain; charset=ISO-8859-1")
    assert document.text == "“Cláusula” – prazo."


def test_text_with_binary_inside_is_refused():
    with pytest.raises(UnreadableDocument, match="binary data"):
        parse(b"texto\x00\x01\x02", "text/plain")


def test_markdown_structure():
    source = (
        "# Parecer\n\nIntrodução em\nduas linhas.\n\n## Dos fatos\n\n- primeiro fato\n- segundo fato\n\n"
        "| Artigo | Tema |\n|---|---|\n| 421 | Função social |\n\nConclusão\n---------\n\n```\nArt. 1\n```\n"
    )
    document = parse(source.encode(), "text/markdown")
    assert [(block.kind, block.text, block.heading_path) for block in document.blocks] == [
        ("heading", "Parecer", ("Parecer",)),
        ("paragraph", "Introdução em duas linhas.", ("Parecer",)),
        ("heading", "Dos fatos", ("Parecer", "Dos fatos")),
        ("paragraph", "primeiro fato", ("Parecer", "Dos fatos")),
        ("paragraph", "segundo fato", ("Parecer", "Dos fatos")),
        ("table", "Artigo | Tema\n421 | Função social", ("Parecer", "Dos fatos")),
        ("heading", "Conclusão", ("Parecer", "Conclusão")),
        ("paragraph", "Art. 1", ("Parecer", "Conclusão")),
    ]


# Types


@pytest.mark.parametrize("content_type", ["image/png", "application/msword", "application/octet-stream", ""])
def test_unsupported_declared_type(content_type):
    with pytest.raises(UnsupportedType) as raised:
        parse(b"anything", content_type)
    assert raised.value.content_type == content_type


def test_unsupported_content_under_a_supported_type():
    with pytest.raises(UnsupportedType) as raised:
        parse(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, PDF)
    assert raised.value.content_type == "image/png"
    with pytest.raises(UnsupportedType, match="application/msword"):
        parse(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 20, DOCX)


@pytest.mark.parametrize(
    ("name", "declared", "reason"),
    [
        ("text.pdf", "text/plain", "sent as text/plain but its content is a PDF"),
        ("brief.docx", PDF, "sent as application/pdf but its content is a DOCX"),
        ("text.pdf", DOCX, "its content is a PDF"),
        ("page.html", PDF, "is not a PDF"),
    ],
)
def test_declared_type_must_match_the_bytes(name, declared, reason):
    with pytest.raises(UnreadableDocument, match=reason):
        parse(fixture(name), declared)


def test_sniff_and_content_type_parameters():
    assert sniff(fixture("text.pdf")) == PDF
    assert sniff(fixture("brief.docx")) == DOCX
    assert sniff(fixture("bomb.docx")) == DOCX
    assert sniff(fixture("page.html")) is None
    assert parse(fixture("text.pdf"), "Application/PDF; charset=binary").pages == 2


def test_empty_file():
    with pytest.raises(UnreadableDocument, match="empty"):
        parse(b"", "text/plain")
    with pytest.raises(UnreadableDocument, match="No text found"):
        parse(b"  \n\n ", "text/plain")


# The model


def test_json_round_trip_keeps_pages_and_paths():
    document = parse(fixture("text.pdf"), PDF)
    stored = document.to_json()
    assert ParsedDocument.from_json(stored) == document
    assert "Consumidor" in stored, "stored as readable UTF-8"


def test_levenshtein_matches_the_definition():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("ação", "acao") == 2
    assert character_error_rate("Art.  1º\nTexto", "Art. 1º Texto") == 0


def test_importing_intake_loads_no_parser_library():
    libraries = ("pypdfium2", "docx", "selectolax", "lxml")
    code = f"import harvey.intake, sys; print(sorted(m for m in {libraries!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
