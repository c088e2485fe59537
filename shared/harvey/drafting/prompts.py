"""Prompt contract between the pipeline and any model, including the offline one.

Sources are numbered blocks; the model must cite them as [n]. The same text format
is parsed back by `harvey/extractive`, so changing it means changing both (and
bumping HARVEY_PROMPT_VERSION, recorded in every audit row).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DOC_TYPES: dict[str, str] = {
    "peticao_inicial": "Petição inicial",
    "contestacao": "Contestação",
    "recurso": "Recurso (apelação)",
    "parecer": "Parecer jurídico",
    "contrato": "Contrato",
    "notificacao": "Notificação extrajudicial",
}

SECTIONS: dict[str, list[str]] = {
    "peticao_inicial": ["Endereçamento", "Qualificação", "Dos Fatos", "Do Direito", "Dos Pedidos", "Fecho"],
    "contestacao": [
        "Endereçamento",
        "Qualificação",
        "Síntese da Inicial",
        "Do Direito",
        "Dos Pedidos",
        "Fecho",
    ],
    "recurso": ["Endereçamento", "Qualificação", "Dos Fatos", "Das Razões", "Dos Pedidos", "Fecho"],
    "parecer": ["Ementa", "Relatório", "Fundamentação", "Conclusão"],
    "contrato": ["Partes", "Objeto", "Obrigações", "Fundamentação Legal", "Foro"],
    "notificacao": ["Notificante e Notificado", "Dos Fatos", "Do Direito", "Da Notificação"],
}

# The section holding the legal grounds: where every sentence must cite a source.
GROUNDS_SECTION = {
    "peticao_inicial": "Do Direito",
    "contestacao": "Do Direito",
    "recurso": "Das Razões",
    "parecer": "Fundamentação",
    "contrato": "Fundamentação Legal",
    "notificacao": "Do Direito",
}

# The section that answers the task: the critique wants it resting on cited grounds.
CONCLUSION_SECTION = {
    "peticao_inicial": "Dos Pedidos",
    "contestacao": "Dos Pedidos",
    "recurso": "Dos Pedidos",
    "parecer": "Conclusão",
    "contrato": "Obrigações",
    "notificacao": "Da Notificação",
}

# Sections that restate the request (addressing, parties, the client's facts, forum): they make no
# claim about the sources, so the faithfulness check leaves them out.
RESTATED_SECTIONS = frozenset(
    {
        "Endereçamento",
        "Qualificação",
        "Dos Fatos",
        "Síntese da Inicial",
        "Relatório",
        "Partes",
        "Notificante e Notificado",
        "Fecho",
        "Foro",
    }
)
_SECTION = re.compile(r"^##\s+(.+?)\s*$", re.MULTILINE)

SYSTEM = (
    "Você é um advogado brasileiro experiente. Redija em português jurídico formal, em Markdown, "
    "com um título '## ' para cada seção pedida, na ordem dada. Fundamente cada afirmação jurídica "
    "citando as FONTES numeradas no formato [n]. Use somente as fontes fornecidas: nunca invente "
    "leis, artigos, julgados ou números de fonte. Se as fontes não bastarem, diga isso."
)


@dataclass
class Source:
    """A retrieved passage as the draft numbers it ([n]); the same object from retrieval to references."""

    n: int
    label: str
    title: str
    text: str
    source_id: str = ""
    chunk_id: str = ""
    metadata: dict = field(default_factory=dict)
    score: float = 0.0

    @property
    def page(self) -> int | None:
        page = self.metadata.get("page")
        return page if isinstance(page, int) else None


@dataclass
class DraftRequest:
    doc_type: str
    area: str
    task: str
    facts: str = ""
    parties: dict[str, str] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)


def draft_messages(req: DraftRequest) -> list[dict[str, str]]:
    parties = "\n".join(f"- {role}: {name}" for role, name in req.parties.items()) or "- (não informadas)"
    blocks = "\n".join(f"[{s.n}] {s.label} | {s.title}\n<<<\n{s.text}\n>>>" for s in req.sources)
    user = (
        f"TIPO DE DOCUMENTO: {req.doc_type}\n"
        f"ÁREA: {req.area}\n"
        f"SEÇÕES: {'; '.join(SECTIONS[req.doc_type])}\n"
        f"TAREFA: {req.task}\n"
        f"FATOS: {req.facts or '(não informados)'}\n"
        f"PARTES:\n{parties}\n"
        f"FONTES:\n{blocks}\n"
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


# What each faithfulness flag (harvey.faithfulness.features.FLAGS) tells the reviser to fix.
FLAG_HINTS = {
    "number_missing": "número, valor ou prazo que a fonte não traz",
    "article_missing": "artigo ou dispositivo que a fonte não menciona",
    "negation_mismatch": "negação invertida em relação à fonte",
    "modal_mismatch": "troca entre dever e poder",
    "restrictor_missing": "restrição (somente, todos, exclusivamente) que a fonte não faz",
    "antonym_conflict": "termo oposto ao da fonte",
    "novel_run": "trecho sem correspondência na fonte",
    "citation_missing": "citação a fonte inexistente",
}


def unsupported_issue(sentence: dict) -> str:
    """One critique line for a sentence the faithfulness check did not support, with what it flagged."""
    hints = "; ".join(FLAG_HINTS.get(flag, flag) for flag in sentence.get("flags", []))
    return f"frase sem suporte nas fontes citadas{f' ({hints})' if hints else ''}: {sentence['text']}"


def revise_messages(req: DraftRequest, draft_md: str, issues: list[str], remove: list[str]) -> list[dict[str, str]]:
    """Ask for a corrected draft; `remove` lists sentences the critique found unsupported."""
    messages = draft_messages(req)
    notes = "\n".join(f"- {issue}" for issue in issues)
    removals = "\n".join(f"REMOVER: {sentence}" for sentence in remove)
    messages.append({"role": "assistant", "content": draft_md})
    messages.append(
        {
            "role": "user",
            "content": (
                "REVISÃO: corrija o rascunho acima. Problemas encontrados:\n"
                f"{notes}\n{removals}\n"
                "Devolva o documento inteiro corrigido, mantendo somente citações [n] das FONTES."
            ),
        }
    )
    return messages


_FIELD = re.compile(r"^(TIPO DE DOCUMENTO|ÁREA|SEÇÕES|TAREFA|FATOS): ?(.*)$", re.MULTILINE)
_SOURCE = re.compile(r"^\[(\d+)\] (.*?) \| (.*?)\n<<<\n(.*?)\n>>>", re.MULTILINE | re.DOTALL)
_PARTY = re.compile(r"^- ([^:\n]+): (.+)$", re.MULTILINE)


def parse_draft_request(user_message: str) -> DraftRequest:
    """Inverse of `draft_messages` for the offline model."""
    fields = dict(_FIELD.findall(user_message))
    head, _, rest = user_message.partition("FONTES:\n")
    parties_block = head.partition("PARTES:\n")[2]
    parties = {role: name for role, name in _PARTY.findall(parties_block) if name != "(não informadas)"}
    sources = [Source(int(n), label, title, text) for n, label, title, text in _SOURCE.findall(rest)]
    facts = fields.get("FATOS", "")
    return DraftRequest(
        doc_type=fields.get("TIPO DE DOCUMENTO", "parecer"),
        area=fields.get("ÁREA", ""),
        task=fields.get("TAREFA", ""),
        facts="" if facts == "(não informados)" else facts,
        parties=parties,
        sources=sources,
    )


def claim_sections(draft_md: str) -> str:
    """The draft without the sections that only restate the request."""
    parts = _SECTION.split(draft_md)
    kept = [parts[0]]
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        if title not in RESTATED_SECTIONS:
            kept.append(f"## {title}\n{body}")
    return "".join(kept)


def sections_of(draft_md: str) -> list[tuple[str, str]]:
    """(title, Markdown) of each `## ` section, in order; text before the first heading is ("", text)."""
    parts = _SECTION.split(draft_md)
    found = [("", parts[0])] if parts[0].strip() else []
    found += [(title, f"## {title}\n{body}") for title, body in zip(parts[1::2], parts[2::2], strict=True)]
    return found
