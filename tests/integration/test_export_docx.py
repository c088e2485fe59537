"""Word export of a draft: structure read back with python-docx, byte-identical re-renders, a firm letterhead
kept, and a real renderer (LibreOffice headless) turning the .docx into a PDF whose text has the citations,
a reference entry and the audit footer.

The drafts under tests/fixtures/export/ are the demo petição and parecer as `harvey generate --json` made them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import docx
import pytest
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from harvey.export.docx import ExportedDraft, InvalidTemplate, render

from tests.fixtures.export import make_letterhead

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "export"
ROOT = Path(__file__).resolve().parents[2]


def draft(name: str = "peticao_inicial") -> ExportedDraft:
    return ExportedDraft.from_run(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")))


def synthetic(document_md: str) -> ExportedDraft:
    return ExportedDraft(
        run_id="00000000-0000-4000-8000-000000000001",
        document_md=document_md,
        model_used="harvey/extractive",
        output_hash=hashlib.sha256(document_md.encode()).hexdigest(),
        doc_type="parecer",
        created_at=datetime(2026, 3, 4, 5, 6, 8, tzinfo=UTC),
    )


def opened(data: bytes) -> docx.document.Document:
    return docx.Document(io.BytesIO(data))


def letterhead() -> bytes:
    return (FIXTURES / "letterhead.docx").read_bytes()


def footer_xml(document: docx.document.Document) -> str:
    return "".join(p._p.xml for p in document.sections[0].footer.paragraphs)


def test_fixtures_are_the_runs_they_claim_to_be():
    for name in ("peticao_inicial", "parecer"):
        run = draft(name)
        assert hashlib.sha256(run.document_md.encode()).hexdigest() == run.output_hash
        assert "## Referências" in run.document_md


def test_petição_structure_headings_justified_body_references():
    run = draft()
    document = opened(render(run))
    paragraphs = document.paragraphs
    assert (paragraphs[0].style.name, paragraphs[0].text) == ("Title", "PETICAO INICIAL")
    headings = [p.text for p in paragraphs if p.style.name == "Heading 2"]
    assert headings[:3] == ["Endereçamento", "Qualificação", "Dos Fatos"]
    assert headings[-1] == "Referências"

    body = [p for p in paragraphs if p.style.name == "Normal"]
    assert body and all(p.alignment == WD_ALIGN_PARAGRAPH.JUSTIFY for p in body)
    cited = " ".join(p.text for p in body)
    assert "hipossuficiência técnica do consumidor. [1]" in cited
    assert "[2]" in cited and "[3]" in cited

    references = [p for p in paragraphs if p.style.name == "Bibliography"]
    assert [p.text[:4] for p in references] == ["[1] ", "[2] ", "[3] "]
    assert all(p.alignment == WD_ALIGN_PARAGRAPH.LEFT for p in references)
    assert references[1].text.startswith("[2] CDC, art. 42. BRASIL. Lei nº 8.078")
    assert paragraphs.index(references[0]) > next(i for i, p in enumerate(paragraphs) if p.text == "Referências")

    markdown_paragraphs = [b for b in run.document_md.split("\n\n") if b.strip()]
    assert len(paragraphs) == len(markdown_paragraphs)


def test_abnt_page_and_fonts_without_template():
    document = opened(render(draft()))
    section = document.sections[0]
    assert (round(section.page_width.cm, 1), round(section.page_height.cm, 1)) == (21.0, 29.7)
    assert [round(m.cm, 2) for m in (section.top_margin, section.left_margin)] == [3.0, 3.0]
    assert [round(m.cm, 2) for m in (section.bottom_margin, section.right_margin)] == [2.0, 2.0]
    defaults = document.styles.element.find(qn("w:docDefaults"))
    fonts = defaults.find(f"{qn('w:rPrDefault')}/{qn('w:rPr')}/{qn('w:rFonts')}")
    assert fonts.get(qn("w:ascii")) == fonts.get(qn("w:hAnsi")) == "Times New Roman"
    assert defaults.find(f"{qn('w:rPrDefault')}/{qn('w:rPr')}/{qn('w:sz')}").get(qn("w:val")) == "24"
    assert defaults.find(f"{qn('w:pPrDefault')}/{qn('w:pPr')}/{qn('w:spacing')}").get(qn("w:line")) == "360"
    heading = document.styles["Heading 2"]
    assert heading.font.color.rgb == docx.shared.RGBColor(0, 0, 0) and heading.font.bold
    assert heading.element.rPr.rFonts is None, "a theme font would override Times New Roman"


def test_footer_and_core_properties_lead_back_to_the_audit_row():
    run = draft()
    document = opened(render(run))
    footer = document.sections[0].footer
    text = " ".join(p.text for p in footer.paragraphs)
    assert f"Harvey · run {run.run_id} · sha256 {run.output_hash[:16]} · página 1 de 1" in text
    instructions = [t.text.strip() for t in footer._element.iter(qn("w:instrText"))]
    assert instructions == ["PAGE", "NUMPAGES"]

    properties = document.core_properties
    assert properties.title == "PETICAO INICIAL"
    assert properties.subject == "peticao_inicial"
    assert properties.identifier == run.run_id
    assert run.model_used in properties.keywords and run.output_hash in properties.keywords
    assert run.output_hash in properties.comments and run.run_id in properties.comments
    created = run.created_utc.replace(microsecond=0)
    assert properties.created == properties.modified == created
    assert properties.last_modified_by == "" and properties.author == "Harvey"
    assert properties.last_printed is None and properties.revision == 1


def test_inline_emphasis_lists_and_quotations():
    document_md = (
        "# PARECER\n\n## Análise\n\nO prazo é **decadencial** e *não* prescricional; ***atenção***.\n\n"
        "- primeiro ponto\n- segundo ponto\n\n1. pedido um\n2. pedido dois\n\nEntre listas.\n\n"
        "1. outro um\n2. outro dois\n\n> Art. 26. O direito de reclamar pelos vícios aparentes\n"
        "> caduca em noventa dias.\n\n### Subitem\n\nTexto [4].\n"
    )
    document = opened(render(synthetic(document_md)))
    paragraphs = document.paragraphs
    runs = {r.text: (bool(r.bold), bool(r.italic)) for p in paragraphs for r in p.runs}
    assert runs["decadencial"] == (True, False)
    assert runs["não"] == (False, True)
    assert runs["atenção"] == (True, True)
    assert "O prazo é decadencial e não prescricional; atenção." in [p.text for p in paragraphs]

    by_style = [(p.style.name, p.text) for p in paragraphs]
    assert ("List Bullet", "segundo ponto") in by_style
    numbered = [p for p in paragraphs if p.style.name == "List Number"]
    assert [p.text for p in numbered] == ["pedido um", "pedido dois", "outro um", "outro dois"]
    num_ids = [p._p.pPr.numPr.numId.val for p in numbered]
    assert num_ids[0] == num_ids[1] != num_ids[2] == num_ids[3], "each numbered list restarts at 1"
    numbering = document.part.numbering_part.element
    restart = numbering.num_having_numId(num_ids[2]).find(f"{qn('w:lvlOverride')}/{qn('w:startOverride')}")
    assert restart.get(qn("w:val")) == "1"

    quote = next(p for p in paragraphs if p.style.name == "Quote")
    assert quote.text == "Art. 26. O direito de reclamar pelos vícios aparentes caduca em noventa dias."
    assert round(document.styles["Quote"].paragraph_format.left_indent.cm, 1) == 4.0
    assert ("Heading 3", "Subitem") in by_style


def test_same_run_gives_the_same_bytes():
    run = draft()
    first = render(run)
    assert render(run) == first
    code = (
        "import json, sys; from harvey.export.docx import ExportedDraft, render; "
        "run = ExportedDraft.from_run(json.load(open(sys.argv[1], encoding='utf-8'))); "
        "sys.stdout.buffer.write(render(run))"
    )
    other_process = subprocess.run(
        [sys.executable, "-c", code, str(FIXTURES / "peticao_inicial.json")],
        capture_output=True,
        check=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "12345", "TZ": "America/Sao_Paulo"},
    )
    assert other_process.stdout == first

    with zipfile.ZipFile(io.BytesIO(first)) as package:
        infos = package.infolist()
    assert [i.filename for i in infos[:2]] == ["[Content_Types].xml", "_rels/.rels"]
    assert [i.filename for i in infos[2:]] == sorted(i.filename for i in infos[2:])
    stamp = run.created_utc.timetuple()[:5]
    assert {i.date_time[:5] for i in infos} == {stamp}
    assert "docProps/thumbnail.jpeg" not in {i.filename for i in infos}

    changed = ExportedDraft(**{**run.__dict__, "output_hash": "0" * 64})
    assert render(changed) != first


def test_letterhead_keeps_its_header_footer_styles_and_page():
    run = draft()
    document = opened(render(run, letterhead()))
    section = document.sections[0]
    header_text = " ".join(p.text for p in section.header.paragraphs)
    assert make_letterhead.FIRM in header_text and make_letterhead.HEADER_LINE in header_text
    assert section.header.part.rels and any("image" in r.reltype for r in section.header.part.rels.values())
    footer_text = [p.text for p in section.footer.paragraphs]
    assert footer_text[0] == make_letterhead.FOOTER_LINE
    assert f"run {run.run_id}" in footer_text[-1]
    assert round(section.top_margin.cm, 2) == 3.5 and round(section.left_margin.cm, 2) == 2.5

    normal = document.styles["Normal"]
    assert (normal.font.name, normal.font.size) == (make_letterhead.NORMAL_FONT, make_letterhead.NORMAL_SIZE)
    assert document.styles["Heading 2"].font.color.rgb == make_letterhead.HEADING_COLOR

    texts = [p.text for p in document.paragraphs]
    assert "{{ draft }}" not in texts
    assert texts[0] == "PETICAO INICIAL" and texts[-1] == make_letterhead.SIGNATURE
    assert texts.index("Referências") < texts.index(make_letterhead.SIGNATURE)
    assert render(run, letterhead()) == render(run, letterhead())


def test_letterhead_without_placeholder_has_its_body_replaced():
    template = opened(letterhead())
    for paragraph in template.paragraphs:
        paragraph._p.getparent().remove(paragraph._p)
    template.add_paragraph("Texto de exemplo do papel timbrado.")
    saved = io.BytesIO()
    template.save(saved)

    document = opened(render(draft("parecer"), saved.getvalue()))
    texts = [p.text for p in document.paragraphs]
    assert texts[0] == "PARECER" and texts[-1].startswith("[6] CDC, art. 14.")
    assert "Texto de exemplo do papel timbrado." not in texts
    assert make_letterhead.FIRM in " ".join(p.text for p in document.sections[0].header.paragraphs)


def test_template_without_heading_and_list_styles_gets_them_added():
    """Word saves only the styles a document uses: a firm's letterhead rarely defines headings or lists."""
    template = opened(letterhead())
    for name in ("Title", "Heading 2", "List Bullet", "List Number", "Quote"):
        element = template.styles[name].element
        element.getparent().remove(element)
    saved = io.BytesIO()
    template.save(saved)
    document_md = "# NOTIFICAÇÃO\n\n## Dos fatos\n\n- um fato\n- outro fato\n\n1. pede\n2. requer\n\nTexto.\n\n1. novo"
    document = opened(render(synthetic(document_md), saved.getvalue()))

    heading = document.styles["Heading 2"]
    assert heading.font.bold and heading.base_style.name == "Normal"
    assert heading.element.pPr.find(qn("w:outlineLvl")).get(qn("w:val")) == "1"
    by_text = {p.text: p for p in document.paragraphs}
    assert by_text["Dos fatos"].style.name == "Heading 2"
    assert by_text["NOTIFICAÇÃO"].style.name == "Title"
    assert {"•\tum fato", "•\toutro fato", "1.\tpede", "2.\trequer", "1.\tnovo"} <= set(by_text)
    assert by_text["Texto."].alignment == WD_ALIGN_PARAGRAPH.JUSTIFY
    assert document.styles["Normal"].font.name == make_letterhead.NORMAL_FONT


def zip_of(name: str, data: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        package.writestr(name, data)
    return out.getvalue()


NOT_DOCX = {"pdf": b"%PDF-1.7 not a word document", "empty": b"", "zip": zip_of("notes.txt", "not a document")}


@pytest.mark.parametrize("template", NOT_DOCX.values(), ids=NOT_DOCX.keys())
def test_template_that_is_not_a_docx_is_refused(template):
    with pytest.raises(InvalidTemplate, match="not a .docx"):
        render(draft(), template)


@pytest.fixture(scope="module")
def pdf_texts(tmp_path_factory) -> dict[str, str]:
    """The petição (plain and on the letterhead) and the parecer, converted by LibreOffice in one run, as
    pdftotext reads them (whitespace collapsed, since lines wrap anywhere)."""
    soffice, pdftotext = shutil.which("soffice"), shutil.which("pdftotext")
    if soffice is None:
        pytest.skip("LibreOffice (soffice) not installed: run `make tools` (apt-get install libreoffice-writer)")
    if pdftotext is None:
        pytest.skip("pdftotext not installed: run `make tools` (apt-get install poppler-utils)")
    folder = tmp_path_factory.mktemp("libreoffice")
    sources = {
        "peticao": render(draft()),
        "peticao-timbrado": render(draft(), letterhead()),
        "parecer": render(draft("parecer")),
    }
    for name, data in sources.items():
        (folder / f"{name}.docx").write_bytes(data)
    converted = subprocess.run(
        [
            soffice,
            f"-env:UserInstallation={(folder / 'profile').as_uri()}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(folder),
            *(str(folder / f"{name}.docx") for name in sources),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert converted.returncode == 0, converted.stderr
    texts = {}
    for name in sources:
        pdf = folder / f"{name}.pdf"
        assert pdf.is_file() and pdf.read_bytes().startswith(b"%PDF"), converted.stdout + converted.stderr
        out = subprocess.run([pdftotext, str(pdf), "-"], capture_output=True, text=True, check=True, timeout=60)
        texts[name] = " ".join(out.stdout.split())
    return texts


def test_libreoffice_renders_citations_references_and_footer(pdf_texts):
    run = draft()
    text = pdf_texts["peticao"]
    assert "hipossuficiência técnica do consumidor. [1]" in text
    assert "[2]" in text and "[3]" in text
    assert "[2] CDC, art. 42. BRASIL. Lei nº 8.078, de 11 de setembro de 1990." in text
    assert f"Harvey · run {run.run_id} · sha256 {run.output_hash[:16]} · página 1 de 2" in text
    assert "página 2 de 2" in text, "NUMPAGES is computed by the renderer"


def test_libreoffice_renders_the_parecer_and_the_letterhead(pdf_texts):
    parecer = draft("parecer")
    assert "[6] CDC, art. 14." in pdf_texts["parecer"]
    assert f"run {parecer.run_id}" in pdf_texts["parecer"]
    on_letterhead = pdf_texts["peticao-timbrado"]
    assert make_letterhead.FIRM in on_letterhead and make_letterhead.FOOTER_LINE in on_letterhead
    assert f"run {draft().run_id}" in on_letterhead and "[1]" in on_letterhead
    assert make_letterhead.SIGNATURE in on_letterhead
