"""`harvey/extractive`: an offline, deterministic drafting model registered with litellm.

It reads the same prompt a hosted model gets, fills the document type's template and
writes the legal grounds only with sentences taken verbatim from the numbered
sources, each cited [n]. Its Conclusão is the clauses of the best-ranked sources that
answer the task, each cited, or says that the sources do not answer it. It cannot
invent a source or a claim, which makes it the safe last link of every fallback
chain and the default when no provider is set.
"""

from __future__ import annotations

import re
import time
import unicodedata

from harvey.drafting.prompts import DOC_TYPES, GROUNDS_SECTION, SECTIONS, DraftRequest, Source, parse_draft_request

MODEL_NAME = "harvey/extractive"

_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    "a ao aos as com da das de do dos e em na nas no nos o os ou para pela pelas pelo pelos por que se "
    "sem sua suas seu seus um uma umas uns ser sao esta este isso nao mais como ate ja "
    # words that ask for the document rather than name the legal question
    "parecer peticao inicial contestacao recurso notificacao minuta consulta sobre acerca quanto "
    "elaborar redigir redija elabore analise".split()
)
_CLAUSE_SPLIT = re.compile(r"(?<=[.;:])\s+(?=[A-ZÁÉÍÓÚÂÊÔÃÕÇ§0-9])|\n+")
# A line break only separates units before a legal marker (inciso, §, alínea, Art.) or a blank line;
# elsewhere it is the hard wrap of a paragraph.
_SOFT_BREAK = re.compile(r"\n(?!\s*\n|\s*(?:[IVXLC]+\s*[-–]|§|Parágrafo|[a-z]\)|Art\.))")
_UNIT_MARKER = re.compile(
    r"^(?:Art\.\s*\d+[º°o]?(?:-[A-Z])?\s*[-–.]?|[IVXLC]+\s*[-–]|§\s*\d+[º°o]?|Parágrafo único\.?|[a-z]\))\s*"
)


def _terms(text: str) -> set[str]:
    folded = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()
    return {w[:6] for w in _WORD.findall(folded) if len(w) > 2 and w not in _STOP}


def _clean(sentence: str) -> str:
    sentence = re.sub(r"\s*\((?:Reda[cç][aã]o|Inclu[ií]d|Vide|Revogad)[^)]*\)", "", sentence)
    sentence = re.sub(r"\s+", " ", sentence).strip(" -–;:")
    return sentence


def _best_sentences(source: Source, query: set[str], limit: int) -> list[str]:
    """The source's clauses that share most terms with the task, in their original order."""
    text = _SOFT_BREAK.sub(" ", source.text)
    # A clause ending in ":" only introduces a list; alone it reads as a broken sentence.
    clauses = [_clean(c) for c in _CLAUSE_SPLIT.split(text) if not c.rstrip().endswith(":")]
    clauses = [c for c in clauses if len(c) >= 25 and not c.startswith("#") and "revogad" not in c.lower()[:40]]
    ranked = sorted(range(len(clauses)), key=lambda i: (-len(_terms(clauses[i]) & query), i))[:limit]
    return [clauses[i] for i in sorted(ranked)]


def _grounds(req: DraftRequest) -> list[str]:
    query = _terms(f"{req.task} {req.facts}")
    paragraphs = []
    for source in req.sources:
        for sentence in _best_sentences(source, query, limit=2):
            sentence = _UNIT_MARKER.sub("", sentence)
            if len(sentence) < 20:
                continue
            text = sentence[0].upper() + sentence[1:]
            if not text.endswith((".", "!", "?")):
                text = text.rstrip(",;:") + "."
            paragraphs.append(f"Conforme o {source.label}: {text} [{source.n}]")
    if not paragraphs:
        paragraphs.append(
            "As fontes disponíveis não bastam para fundamentar o pedido; recomenda-se pesquisa adicional."
        )
    return paragraphs


ANSWER_SOURCES = 3  # the conclusion answers from the best-ranked sources only
_ROMAN_UNIT = re.compile(r"^[IVXLC]+\s*[-–]")
NO_ANSWER = (
    "As fontes recuperadas não respondem à questão da consulta; nenhuma conclusão é possível sem pesquisa adicional."
)


def polar_terms(text: str) -> set[str]:
    """Terms as `_terms`, but a word right after "não" is its own term: "não duráveis" is not "duráveis"."""
    folded = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()
    terms, negated = set(), False
    for word in _WORD.findall(folded):
        if word == "nao":
            negated = True
            continue
        if len(word) > 2 and word not in _STOP:
            terms.add(("~" if negated else "") + word[:6])
        negated = False
    return terms


def _answer_clauses(source: Source) -> list[str]:
    """The source's clauses that can stand alone as an answer: an inciso is joined to the clause
    that introduces it ("caduca em:" + "noventa dias, …"), so it keeps its meaning."""
    out, intro = [], ""
    for raw in _CLAUSE_SPLIT.split(_SOFT_BREAK.sub(" ", source.text)):
        clause = _clean(raw)
        if not clause or clause.startswith("#") or "revogad" in clause.lower()[:40]:
            continue
        if clause.endswith(":") or raw.rstrip().endswith(":"):
            intro = _UNIT_MARKER.sub("", clause).rstrip(":")
            continue
        if _ROMAN_UNIT.match(clause) and intro:
            body = _UNIT_MARKER.sub("", clause)
            clause = f"{intro} {body[0].lower() + body[1:]}" if body else ""
        else:
            clause, intro = _UNIT_MARKER.sub("", clause), ""
        if len(clause) >= 25:
            out.append(clause)
    return out


def _answers(req: DraftRequest) -> list[tuple[Source, str]]:
    """The clauses that answer the task, at most one per source, each adding task terms the ones
    before it did not cover. Terms weigh by rarity among the candidate clauses: "duráveis" tells
    more than "consumidor", which every clause of the CDC shares."""
    question = polar_terms(req.task)
    candidates = [
        (rank, source, clause)
        for rank, source in enumerate(req.sources[:ANSWER_SOURCES])
        for clause in _answer_clauses(source)
        if "[…]" not in clause
    ]
    terms = {id(c): polar_terms(c) & question for _, _, c in candidates}
    df: dict[str, int] = {}
    for found in terms.values():
        for term in found:
            df[term] = df.get(term, 0) + 1
    chosen: list[tuple[int, Source, str]] = []
    covered: set[str] = set()
    while True:
        scored = [
            (sum(1 / df[t] for t in terms[id(c)] - covered), -rank, source, c)
            for rank, source, c in candidates
            if len(terms[id(c)]) >= 2 and all(source is not s for _, s, _ in chosen)
        ]
        best = max(scored, key=lambda item: item[:2], default=None)
        if best is None or best[0] == 0:
            break
        chosen.append((-best[1], best[2], best[3]))
        covered |= terms[id(best[3])]
    return [(source, clause) for _, source, clause in sorted(chosen, key=lambda item: item[0])]


def _sentence(text: str) -> str:
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text.rstrip(",;:") + "."


def _conclusion(req: DraftRequest) -> list[str]:
    """The parecer's answer, quoted from the provisions that give it; or that the sources do not."""
    answers = _answers(req)
    if not answers:
        return [NO_ANSWER]
    lines = ["Diante da fundamentação exposta, responde-se à consulta:"]
    # The clause alone, verbatim: the provision's label is in the reference list, and its numbers
    # in the sentence read to the faithfulness check as figures the clause does not state.
    lines += [f"{_sentence(clause)} [{source.n}]" for source, clause in answers]
    question = polar_terms(req.task)
    open_terms = question - set().union(*(polar_terms(c) for _, c in answers))
    words = [w for w in re.findall(r"\w{5,}", req.task) if polar_terms(w) & open_terms]
    if words:
        lines.append(
            f"As fontes citadas não tratam expressamente de: {', '.join(dict.fromkeys(w.lower() for w in words))}."
        )
    return lines


def _pedidos_intro(req: DraftRequest) -> str:
    labels = [source.label for source, _ in _answers(req)]
    if not labels:
        return "Diante do exposto, requer:"
    return f"Diante do exposto, com fundamento no {' e no '.join(labels)}, requer:"


def _party(req: DraftRequest, *roles: str, default: str) -> str:
    for role in roles:
        for key, name in req.parties.items():
            if key.lower() == role:
                return name
    return default


def _section_body(req: DraftRequest, section: str) -> list[str]:
    author = _party(req, "autor", "requerente", "contratante", "notificante", "consulente", default="[AUTOR]")
    defendant = _party(req, "réu", "reu", "requerido", "contratada", "notificado", default="[RÉU]")
    task = req.task.rstrip(".")
    task_clause = task[0].lower() + task[1:] if task else ""
    facts = req.facts.strip() or "Os fatos serão detalhados com a documentação anexa."
    if section == GROUNDS_SECTION[req.doc_type]:
        return _grounds(req)
    bodies = {
        "Endereçamento": [
            "EXCELENTÍSSIMO(A) SENHOR(A) DOUTOR(A) JUIZ(A) DE DIREITO DA ___ VARA CÍVEL DA COMARCA DE ___"
        ],
        "Qualificação": [
            f"{author}, já qualificado(a) nos autos, por seu advogado, vem, respeitosamente, à presença de "
            f"Vossa Excelência, em face de {defendant}, expor e requerer o que segue."
        ],
        "Dos Fatos": [facts],
        "Síntese da Inicial": [f"A parte autora pretende: {task}."],
        "Dos Pedidos": [
            _pedidos_intro(req),
            f"a) a procedência do pedido, para {task_clause or 'o fim exposto'};",
            "b) a citação da parte contrária para, querendo, apresentar resposta;",
            "c) a produção de todas as provas admitidas em direito;",
            "d) a condenação da parte contrária nas custas e honorários advocatícios.",
        ],
        "Fecho": [
            "Nestes termos, pede deferimento.",
            "[Local], [data].",
            "[Advogado(a)] — OAB/[UF] [número]",
        ],
        "Ementa": [f"{task}. Análise à luz da legislação citada."],
        "Relatório": [f"Trata-se de consulta sobre: {task}.", facts],
        "Conclusão": _conclusion(req),
        "Partes": [f"CONTRATANTE: {author}. CONTRATADA: {defendant}."],
        "Objeto": [f"O presente instrumento tem por objeto: {task}."],
        "Obrigações": ["As partes obrigam-se a cumprir fielmente as cláusulas deste instrumento, de boa-fé."],
        "Foro": ["Fica eleito o foro da comarca de [cidade] para dirimir quaisquer controvérsias."],
        "Notificante e Notificado": [f"NOTIFICANTE: {author}. NOTIFICADO: {defendant}."],
        "Da Notificação": [
            f"Fica V. Sa. notificado(a) para, no prazo de [prazo], {task_clause or 'regularizar a situação'}."
        ],
    }
    return bodies.get(section, [task])


def draft(req: DraftRequest) -> str:
    title = f"# {DOC_TYPES[req.doc_type].upper()}"
    parts = [title]
    for section in SECTIONS[req.doc_type]:
        parts.append(f"## {section}")
        parts.append("\n\n".join(_section_body(req, section)))
    return "\n\n".join(parts) + "\n"


def revise(previous_draft: str, instructions: str) -> str:
    """Drop the sentences the critique asked to remove and citations to unknown sources."""
    remove = [line[len("REMOVER: ") :].strip() for line in instructions.splitlines() if line.startswith("REMOVER: ")]
    revised = previous_draft
    for sentence in remove:
        revised = revised.replace(sentence, "")
    revised = re.sub(r"\n{3,}", "\n\n", revised)
    return revised


def respond(messages: list[dict]) -> str:
    """The model: a draft for a draft prompt, a revision for a revision prompt."""
    user_messages = [m["content"] for m in messages if m["role"] == "user"]
    last = user_messages[-1] if user_messages else ""
    if last.startswith("REVISÃO:"):
        previous = next(m["content"] for m in reversed(messages) if m["role"] == "assistant")
        return revise(previous, last)
    return draft(parse_draft_request(user_messages[0] if user_messages else ""))


def register() -> None:
    """Make `harvey/extractive` callable through litellm.completion."""
    import litellm
    from litellm import CustomLLM, ModelResponse

    class ExtractiveLLM(CustomLLM):
        def completion(self, model: str, messages: list, *args, **kwargs) -> ModelResponse:  # type: ignore[override]
            content = respond(messages)
            prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
            return ModelResponse(
                model=MODEL_NAME,
                created=int(time.time()),
                choices=[
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content},
                    }
                ],
                usage={
                    "prompt_tokens": prompt_chars // 4,
                    "completion_tokens": len(content) // 4,
                    "total_tokens": (prompt_chars + len(content)) // 4,
                },
            )

    providers = [p for p in litellm.custom_provider_map if p.get("provider") != "harvey"]
    litellm.custom_provider_map = providers + [{"provider": "harvey", "custom_handler": ExtractiveLLM()}]
