"""A model judge for faithfulness (HARVEY_JUDGE_MODEL): reads one claim with its cited passages and
answers supported/unsupported with a reason.

The lexical screen (`faithfulness.support`) reads paraphrase only through shared stems; a judge
model reads meaning. It goes through `llm.complete`, so the claim and passages are pseudonymised
before they leave and the reason is restored, like every external call, and a dead judge costs one
timeout per report (one `llm.Budget` of HARVEY_JUDGE_DEADLINE_S): any failure raises `JudgeError`
and the caller keeps the screen's verdict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

SYSTEM = (
    "Você verifica se uma afirmação é sustentada pelas fontes citadas, e somente por elas. "
    'Responda apenas com um objeto JSON: {"verdict": "supported" | "unsupported", "reason": "<uma frase>"}. '
    '"supported" só se as fontes, sozinhas, acarretam a afirmação inteira: números, prazos, artigos, '
    'negações, sujeitos e condições iguais. Na dúvida, ou se faltar informação, "unsupported".'
)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class JudgeError(Exception):
    """The judge did not answer usably (timeout, provider error, malformed verdict)."""


@dataclass(frozen=True)
class Verdict:
    supported: bool
    reason: str
    model: str


def messages(claim: str, passages: Sequence[str]) -> list[dict[str, str]]:
    sources = "\n\n".join(f"[{i}] {p.strip()}" for i, p in enumerate(passages, 1))
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"FONTES:\n{sources}\n\nAFIRMAÇÃO:\n{claim.strip()}"},
    ]


def parse(text: str) -> tuple[bool, str]:
    """(supported, reason) from the judge's answer; JudgeError unless it holds the JSON verdict."""
    found = _OBJECT.search(text)
    try:
        answer = json.loads(found.group(0)) if found else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict) or answer.get("verdict") not in ("supported", "unsupported"):
        raise JudgeError(f"malformed verdict ({len(text)} characters without a JSON verdict)")
    return answer["verdict"] == "supported", str(answer.get("reason", ""))[:500]


def judge(claim: str, passages: Sequence[str], model: str, budget) -> Verdict:
    """One claim's verdict from `model`; `budget` (an `llm.Budget`) is shared by a report's calls."""
    from harvey import pii
    from harvey.drafting import llm

    try:
        completion = llm.complete(messages(claim, passages), [model], budget)
    except llm.AllModelsFailed as exc:
        raise JudgeError(exc.attempts[-1]["error"] if exc.attempts else str(exc)) from exc
    supported, reason = parse(completion.text)
    # the reason lands in the report and its audit row: personal data the judge echoes is redacted
    return Verdict(supported, pii.redact(reason, names=True)[0], completion.model)


def from_settings() -> Judging | None:
    """The judge HARVEY_JUDGE_MODEL names, or None (the lexical screen decides alone)."""
    from harvey.config import get_settings

    model = get_settings().judge_model
    return Judging(model) if model else None


class Judging:
    """One report's judge calls: a shared deadline, so a dead judge costs one timeout, not one per sentence."""

    def __init__(self, model: str) -> None:
        from harvey.config import get_settings
        from harvey.drafting import llm

        llm.load()  # importing litellm takes seconds: not out of the judge's deadline
        self.model = model
        self.budget = llm.Budget.start(get_settings().judge_deadline_s)
        self.answered = self.failed = 0

    def ask(self, claim: str, passages: list[str]) -> dict:
        import logging

        try:
            verdict = judge(claim, passages, self.model, self.budget)
        except JudgeError as exc:
            self.failed += 1
            logging.getLogger("harvey.drafting.judge").warning(
                "judge failed, screen verdict kept", extra={"model": self.model, "error": str(exc)[:200]}
            )
            return {"model": self.model, "error": str(exc)[:200], "fallback": "screen"}
        self.answered += 1
        return {"model": verdict.model, "supported": verdict.supported, "reason": verdict.reason}

    def summary(self) -> dict:
        return {"model": self.model, "answered": self.answered, "failed": self.failed}
