"""`harvey/extractive`: an offline, deterministic drafting model registered with litellm.

It reads the same prompt a hosted model gets, fills the document type's template and
writes the legal grounds only with sentences taken verbatim from the numbered
sources, each cited [n]. It cannot invent a source or a claim, which makes it the
safe last link of every fallback chain and the default when no provider is set.
"""

from __future__ import annotations

import re
import time
import unicodedata

from harvey.prompts import GROUNDS_SECTION, SECTIONS, DraftRequest, Source, parse_draft_request

MODEL_NAME = "harvey/extractive"

_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    "a ao aos as com da das de do dos e em na nas no nos o os ou para pela pelas pelo pelos por que se "
    "sem sua suas seu seus um uma umas uns ser sao esta este isso nao mais como ate ja".split()
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
            "Diante do exposto, requer:",
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
        "Conclusão": [
            "Diante da fundamentação exposta, conclui-se pela viabilidade jurídica da pretensão nos limites "
            "das normas citadas, salvo melhor juízo."
        ],
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
    title = f"# {req.doc_type.replace('_', ' ').upper()}"
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
