"""The answers suite: each question of `kestrel/datasets/answers.jsonl` is asked on the rag route
(pinned, so a routing mistake does not hide an answer's quality; the service's own quality
check off, so the first answer is the one graded) against the corpus uploaded to the service.
Scores per answer:

* faithfulness: the share of its required facts that the judge finds stated in the answer and
  supported by the sources the service retrieved for it;
* relevance: the judge's 1-5 grade against the reference answer, as (score - 1) / 4;
* fact recall: the share of required facts found in the answer word for word (no judge);
* document recall: the share of the item's documents among the sources.

With the scripted backend the generator replays the reference answer (citing source 1) and the
judge is the lexical stand-in of `evals.judge`: the plumbing is exercised, not a model.
"""

from __future__ import annotations

from typing import Any

import httpx

from evals._data import ANSWERS, described, mean, normalise, read_jsonl, rounded
from evals._service import Backend, turn
from evals.judge import Judge

TENANT = "eval-kestrel"


async def run_answers(
    client: httpx.AsyncClient,
    backend: Backend,
    judge: Judge,
    limit: int | None = None,
    max_tokens: int = 256,
) -> dict[str, Any]:
    items = read_jsonl(ANSWERS)[:limit]
    rows = []
    for item in items:
        backend.script("generator", f"{item['reference_answer']} [1]")
        result = await turn(
            client,
            item["question"],
            TENANT,
            route="rag",
            quality_check=False,
            max_tokens=max_tokens,
        )
        texts = [s.get("text", "") for s in result.sources]
        verdicts = [await judge.support(texts, result.answer, f) for f in item["required_facts"]]
        relevance = await judge.relevance(
            item["question"], item["reference_answer"], result.answer, item["required_facts"]
        )
        usable = [v.value for v in verdicts if v.value is not None]
        sources = {str(s.get("source", "")) for s in result.sources}
        rows.append(
            {
                "id": item["id"],
                "answer": result.answer,
                "faithfulness": rounded(mean([float(v) for v in usable])),
                "supported": [v.value for v in verdicts],
                "relevance": None if relevance.value is None else (relevance.value - 1) / 4,
                "relevance_score": relevance.value,
                "fact_recall": rounded(
                    mean(
                        [
                            float(normalise(f) in normalise(result.answer))
                            for f in item["required_facts"]
                        ]
                    )
                ),
                "document_recall": rounded(
                    mean(
                        [
                            float(any(s.endswith(d.split("/")[-1]) for s in sources))
                            for d in item["documents"]
                        ]
                    )
                ),
                "ttft_s": rounded(result.ttft_s),
                "total_s": rounded(result.total_s),
                "error": result.error,
                "trace_id": result.trace_id,
            }
        )

    def average(key: str) -> float | None:
        return rounded(mean([r[key] for r in rows if r[key] is not None]))

    return {
        "suite": "answers",
        "dataset": described(ANSWERS),
        "backend": backend.kind,
        "questions": len(rows),
        "metrics": {
            "faithfulness": average("faithfulness"),
            "relevance": average("relevance"),
            "fact_recall": average("fact_recall"),
            "document_recall": average("document_recall"),
            "unjudged": sum(r["faithfulness"] is None or r["relevance"] is None for r in rows),
            "errors": sum(r["error"] is not None for r in rows),
        },
        "rows": rows,
    }
