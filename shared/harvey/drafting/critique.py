"""The critique: what a draft's faithfulness report and scores say should be revised.

The scores measure what the draft says, not what its template writes.

Every sentence the offline template writes by itself for this request (headings, formulas, the task
pasted into the Relatório) is discounted, so a draft made of template and quotes cannot score
"excellent" for sounding complete. A Conclusão or Pedidos that rests on no cited ground, and grounds
that retrieval found only weakly related to the task, keep a draft below "approved".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harvey.drafting import prompts
from harvey.schemas import GenerateRequest

APPROVE, EXCELLENT = 0.70, 0.85
# A cited source whose retrieval score is under this share of the best hit's is off-topic for the task.
RELEVANCE_RATIO = 0.5

_AREAS = {
    "consumidor": ("consumidor", "fornecedor", "produto", "serviço", "cdc", "compra", "banco", "cobrança"),
    "processual civil": ("petição", "recurso", "apelação", "tutela", "citação", "prazo", "sentença", "processo"),
    "constitucional": ("constitu", "direito fundamental", "mandado de segurança", "habeas", "liberdade"),
    "trabalhista": ("trabalh", "empregad", "salári", "clt", "rescisão", "férias", "jornada"),
    "penal": ("crime", "pena", "penal", "delito", "prisão"),
    "tributário": ("tribut", "imposto", "fisco", "icms", "contribuição"),
    "civil": ("contrato", "dano", "indeniza", "responsabilidade", "obrigação", "posse", "propriedade"),
}
# Words of a task that name the document or the request, not its legal question.
_GENERIC = frozenset(
    "parecer sobre acerca quanto contra entre acao pedido peticao inicial contestacao recurso apelacao "
    "contrato notificacao extrajudicial analise consulta elaborar redigir minuta documento cliente parte "
    "partes favor juridico juridica".split()
)
_CITATION = re.compile(r"\[[\d\s,;–—e-]+\]")
_LABEL = re.compile(r"^(?P<law>[^,]+), art\. (?P<art>[\d.]+(?:º)?(?:-[A-Z])?)")


def classify_area(text: str) -> str:
    lowered = text.lower()
    scores = {area: sum(lowered.count(k) for k in keys) for area, keys in _AREAS.items()}
    best = max(scores, key=lambda a: scores[a])
    return best if scores[best] else "civil"


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()


def key_terms(text: str) -> dict[str, str]:
    """The task's legal terms: 6-letter stems of its words of 5+ letters -> the word as written."""
    terms: dict[str, str] = {}
    for word in re.findall(r"\w{5,}", text):
        folded = _fold(word)
        if folded not in _GENERIC:
            terms.setdefault(folded[:6], word.lower())
    return terms


def _stems(text: str) -> set[str]:
    return {_fold(w)[:6] for w in re.findall(r"\w{5,}", text)}


def _normal(sentence: str) -> str:
    return " ".join(_CITATION.sub(" ", sentence).lower().split()).strip(" .;:")


def _section(draft_md: str, title: str) -> str:
    match = re.search(rf"^##\s+{re.escape(title)}\s*$(.*?)(?=^##\s|\Z)", draft_md, re.MULTILINE | re.DOTALL)
    return match.group(1).strip() if match else ""


def _template(req: GenerateRequest) -> set[str]:
    """What the offline template writes for this request without any source: it proves nothing."""
    from harvey.drafting import extractive
    from harvey.faithfulness.text import split_markdown

    bare = prompts.DraftRequest(req.doc_type, "", req.task, req.facts, dict(req.parties), [])
    return {_normal(s) for s in split_markdown(extractive.draft(bare))} | {_normal(req.task), _normal(req.facts)}


def _own(body: str, template: set[str]) -> list[str]:
    from harvey.faithfulness.text import split_markdown

    return [s for s in split_markdown(body) if _normal(s) and _normal(s) not in template]


def _refers_to(text: str, n: int, label: str) -> bool:
    """A request section rests on source n when it cites [n] or names its article ("art. 42 … CDC")."""
    if n in _cited(text):
        return True
    match = _LABEL.match(label)
    if not match:
        return bool(label) and _fold(label) in _fold(text)
    article = re.escape(match["art"].rstrip("º"))
    folded = _fold(text)
    return bool(re.search(rf"\bart(?:igo)?\.?\s*{article}\b", folded)) and _fold(match["law"]) in folded


def _denies(sentence: str, sources: Sequence[prompts.Source], n: int) -> bool:
    """The sentence negates a word its source states plainly ("não caduca" against "caduca")."""
    from harvey.drafting.extractive import polar_terms

    if not 0 < n <= len(sources) or not sources[n - 1].text:
        return False
    source = polar_terms(sources[n - 1].text)
    negated = {t[1:] for t in polar_terms(sentence) if t.startswith("~")}
    return any(t in source and f"~{t}" not in source for t in negated)


def _cited(text: str) -> set[int]:
    from harvey.faithfulness import parse_citations

    return set(parse_citations(text))


def score_quality(
    req: GenerateRequest, draft_md: str, report: dict[str, Any], sources: Sequence[prompts.Source] = ()
) -> dict[str, Any]:
    """The four critique scores, each in [0, 1], the verdict against 0.70 / 0.85, and why it is capped.

    `sources` are the retrieved sources in prompt order ([n] is sources[n-1]); the faithfulness
    report can miss a conclusion that negates its source, so that is checked here too.
    """
    template = _template(req)
    sections = prompts.SECTIONS[req.doc_type]
    present = [s for s in sections if _section(draft_md, s)]
    substantive = [s for s in sections if s not in prompts.RESTATED_SECTIONS]
    own = {s: _own(_section(draft_md, s), template) for s in substantive}
    estrutura = sum(1 for s in substantive if own[s]) / len(substantive)

    best = max((s.score for s in sources), default=0.0)
    relevant = {n for n, s in enumerate(sources, 1) if best > 0 and s.score >= RELEVANCE_RATIO * best}
    grounds = [s for s in report["sentences"] if s["citations"]]
    on_topic = [s for s in grounds if not sources or set(s["citations"]) <= relevant]
    fundamentacao = sum(1 for s in on_topic if s["supported"]) / len(grounds) if grounds else 0.0
    off_topic = sorted({n for s in grounds for n in s["citations"] if sources and n not in relevant})

    mine = [s for body in own.values() for s in body]
    mean_words = sum(len(s.split()) for s in mine) / max(1, len(mine))
    clareza = (1.0 if mean_words <= 35 else max(0.4, 1.0 - (mean_words - 35) / 75)) if mine else 0.0

    unsupported = {_normal(s["text"]) for s in report["sentences"] if not s["supported"]}
    terms = key_terms(req.task)
    grounds_title, conclusion_title = prompts.GROUNDS_SECTION[req.doc_type], prompts.CONCLUSION_SECTION[req.doc_type]

    def coverage(title: str) -> set[str]:
        answered = " ".join(s for s in own.get(title, []) if _normal(s) not in unsupported)
        return set(terms) & _stems(answered)

    covered_grounds, covered_conclusion = coverage(grounds_title), coverage(conclusion_title)
    if terms:
        completude = (len(covered_grounds) + len(covered_conclusion)) / (2 * len(terms))
    else:
        completude = 1.0 if own.get(conclusion_title) else 0.0

    blockers = []
    supported_ns = {n for s in grounds if s["supported"] for n in s["citations"]}
    if conclusion_title == "Conclusão":
        said = {_normal(x) for x in own["Conclusão"]}
        in_conclusion = [s for s in grounds if _normal(s["text"]) in said]
        if not any(s["supported"] for s in in_conclusion) or any(not s["supported"] for s in in_conclusion):
            blockers.append("a Conclusão não se apoia em fundamento citado e confirmado pelas fontes")
        denied = sorted({n for s in in_conclusion for n in s["citations"] if _denies(s["text"], sources, n)})
        if denied:
            blockers.append(f"a Conclusão nega o que dizem as fontes {', '.join(f'[{n}]' for n in denied)}")
    elif conclusion_title == "Dos Pedidos":
        pedidos = " ".join(own["Dos Pedidos"])
        if not any(_refers_to(pedidos, n, sources[n - 1].label if sources else "") for n in supported_ns):
            blockers.append("os Pedidos não se apoiam em fundamento citado e confirmado pelas fontes")
    if not any(s["supported"] for s in on_topic):
        blockers.append("nenhum fundamento citado é pertinente à tarefa e confirmado pelas fontes")

    scores = {
        "estrutura": round(estrutura, 3),
        "fundamentacao": round(fundamentacao, 3),
        "clareza": round(clareza, 3),
        "completude": round(completude, 3),
    }
    overall = sum(scores.values()) / len(scores)
    verdict = "excellent" if overall >= EXCELLENT else "approved" if overall >= APPROVE else "needs_review"
    if blockers:
        verdict = "needs_review"
    return {
        **scores,
        "overall": round(overall, 3),
        "verdict": verdict,
        "missing_sections": [s for s in sections if s not in present],
        "template_only_sections": [s for s in substantive if s in present and not own[s]],
        "off_topic_citations": off_topic,
        "unanswered_terms": [terms[t] for t in terms if t not in covered_grounds | covered_conclusion],
        "blockers": blockers,
    }


@dataclass(frozen=True)
class Review:
    """One critique round: the faithfulness report, the scores, and what a revision must fix."""

    report: dict[str, Any]
    quality: dict[str, Any]
    issues: list[str]
    unsupported: list[str]
    unknown_citations: list[int]


def assess(draft_md: str, sources: Sequence[prompts.Source]) -> dict[str, Any]:
    """The faithfulness report of a draft's claim sections against its numbered sources."""
    from harvey import faithfulness
    from harvey.drafting import judge

    by_number = {s.n: s.text for s in sources}
    return faithfulness.assess(prompts.claim_sections(draft_md), by_number, judge.from_settings())


def review(req: GenerateRequest, draft_md: str, sources: Sequence[prompts.Source]) -> Review:
    """Read a draft as the reviser will be told about it: unknown citations, unsupported claims, missing sections."""
    from harvey import faithfulness

    report = assess(draft_md, sources)
    known = {s.n for s in sources}
    unknown = sorted({n for n in faithfulness.parse_citations(draft_md) if n not in known})
    quality = score_quality(req, draft_md, report, sources)
    weak = [s for s in report["sentences"] if s["citations"] and not s["supported"]]
    issues = [f"citação [{n}] não corresponde a nenhuma fonte" for n in unknown]
    issues += [prompts.unsupported_issue(s) for s in weak]
    issues += [f"seção ausente: {s}" for s in quality["missing_sections"]]
    return Review(report, quality, issues, [s["text"] for s in weak], unknown)
