"""The judge: a model prompted to grade answers, for the answers suite.

Two questions are put to it, each with a constrained JSON answer:

* support (faithfulness): given the sources, an answer and one required fact, does the answer
  state the fact and do the sources back it? `{"verdict": "yes" | "no"}`.
* relevance: given the question, the reference answer and an answer, how well does the answer
  address the question (1-5)? `{"score": n}`; 4 or more counts as relevant.

The judge is itself checked on a calibration set (`kestrel/datasets/judge_calibration.jsonl`):
answers labelled good or bad (a wrong fact, an off-topic answer) with the verdicts a sound judge
gives; its agreement with them is reported beside the scores it gives.

With the scripted backend there is no model to judge: `lexical_support` and `lexical_relevance`
stand in (string matching), scripted as the judge's replies, so the prompts, parsing and
aggregation run while the verdicts are the stand-in's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evals._data import CALIBRATION, described, normalise, read_jsonl, rounded
from switchboard.errors import BackendError
from switchboard.llm import LLMPool
from switchboard.settings import Role

SUPPORT = """You check one fact against an answer and the sources it was written from.
Say "yes" only if the answer states the fact (the same value, name or date) and the sources
support it; say "no" if the answer leaves it out, states something different, or the sources
do not back it.
Reply with JSON only, like {"verdict": "yes"}."""

SUPPORT_INPUT = """<sources>
{sources}
</sources>
<answer>
{answer}
</answer>
<fact>
{fact}
</fact>"""

RELEVANCE = """You grade how well an answer addresses a question, given a reference answer.
Score 5 if it answers the question with the reference's facts, 3 if it is on topic but incomplete
or partly wrong, 1 if it is wrong, off-topic or empty.
Reply with JSON only, like {"score": 4}."""

RELEVANCE_INPUT = """Question:
{question}

Reference answer:
{reference}

Answer:
{answer}"""

RELEVANT_SCORE = 4


def lexical_support(sources: Sequence[str], answer: str, fact: str) -> bool:
    """The scripted stand-in for support: the fact occurs in the answer and in a source."""
    wanted = normalise(fact)
    return wanted in normalise(answer) and any(wanted in normalise(s) for s in sources)


def lexical_relevance(answer: str, facts: Sequence[str]) -> int:
    """The scripted stand-in for relevance: 5 when the answer holds every fact, 3 for some,
    else 1."""
    held = sum(normalise(f) in normalise(answer) for f in facts)
    return 5 if facts and held == len(facts) else 3 if held else 1


Script = Callable[[str], None]
"""Queues the judge's next reply (the scripted backend); None for a real model."""


@dataclass
class Verdict:
    value: Any  # True / False for support, 1-5 for relevance, None when unusable
    raw: str


class Judge:
    """Puts the judge's two questions to the judge role's model of the configured backends."""

    def __init__(self, llm: LLMPool, script: Script | None = None) -> None:
        self._llm = llm
        self._script = script

    async def support(self, sources: Sequence[str], answer: str, fact: str) -> Verdict:
        if self._script is not None:
            verdict = "yes" if lexical_support(sources, answer, fact) else "no"
            self._script(json.dumps({"verdict": verdict}))
        text = SUPPORT_INPUT.format(
            sources="\n\n".join(f"[{n}] {s}" for n, s in enumerate(sources, start=1)),
            answer=answer,
            fact=fact,
        )
        raw = await self._ask(SUPPORT, text, "verdict", ["yes", "no"])
        value = _value(raw, "verdict")
        if isinstance(value, str) and value.strip().lower() in ("yes", "no"):
            return Verdict(value.strip().lower() == "yes", raw)
        return Verdict(None, raw)

    async def relevance(
        self, question: str, reference: str, answer: str, facts: Sequence[str]
    ) -> Verdict:
        if self._script is not None:
            self._script(json.dumps({"score": lexical_relevance(answer, facts)}))
        text = RELEVANCE_INPUT.format(question=question, reference=reference, answer=answer)
        raw = await self._ask(RELEVANCE, text, "score", [1, 2, 3, 4, 5])
        value = _value(raw, "score")
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
            return Verdict(value, raw)
        return Verdict(None, raw)

    async def _ask(self, system: str, user: str, field: str, values: list[str] | list[int]) -> str:
        schema = {
            "type": "object",
            "properties": {
                field: {
                    "type": "string" if isinstance(values[0], str) else "integer",
                    "enum": values,
                }
            },
            "required": [field],
            "additionalProperties": False,
        }
        try:
            completion = await self._llm.complete(
                Role.JUDGE,
                [{"role": "system", "content": system}, {"role": "user", "content": user}],
                max_tokens=16,
                temperature=0,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": field, "strict": True, "schema": schema},
                },
            )
        except BackendError as exc:
            return f"<judge failed: {exc.code}>"
        return completion.text


def _value(text: str, key: str) -> object:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()
    return parsed.get(key) if isinstance(parsed, dict) else parsed


async def calibrate(judge: Judge, limit: int | None = None) -> dict[str, Any]:
    """The judge's agreement with the calibration set's expected verdicts."""
    items = read_jsonl(CALIBRATION)[:limit]
    rows = []
    for item in items:
        support = await judge.support(item["sources"], item["answer"], item["fact"])
        relevance = await judge.relevance(
            item["question"], item["sources"][0], item["answer"], [item["fact"]]
        )
        relevant = None if relevance.value is None else relevance.value >= RELEVANT_SCORE
        rows.append(
            {
                "id": item["id"],
                "label": item["label"],
                "support": support.value,
                "support_agrees": support.value is item["expected_supported"],
                "relevance": relevance.value,
                "relevance_agrees": relevant is item["expected_relevant"],
            }
        )
    count = len(rows) or 1
    return {
        "dataset": described(CALIBRATION),
        "items": len(rows),
        "support_agreement": rounded(sum(r["support_agrees"] for r in rows) / count),
        "relevance_agreement": rounded(sum(r["relevance_agrees"] for r in rows) / count),
        "unusable": sum(r["support"] is None or r["relevance"] is None for r in rows),
        "rows": rows,
    }
