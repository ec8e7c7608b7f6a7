"""The routing suite: each labelled question is sent as a turn to the service, and the route it
took is compared with its label — accuracy and a confusion matrix (label by route taken) — with
the time to the first token and to the end of the turn, per route taken.

With a real model the router model decides. With the scripted backend the router model's
answer is scripted to be the label, so the suite checks the plumbing (the route the router
model names is the route taken and reported, for all three routes) and not a model's judgement;
its accuracy is 1.0 unless that plumbing breaks.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from evals._data import ROUTES, ROUTING, described, mean, percentile, read_jsonl, rounded
from evals._service import Backend, turn

TENANT = "eval-kestrel"


def select(items: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """The first `limit` items of each label (all with None), in dataset order."""
    if limit is None:
        return items
    taken: Counter[str] = Counter()
    chosen = []
    for item in items:
        if taken[item["route"]] < limit:
            taken[item["route"]] += 1
            chosen.append(item)
    return chosen


def _script_turn(backend: Backend, route: str) -> None:
    backend.script("router", f'{{"route": "{route}"}}')
    if route == "crew":
        # researcher notes, the writer's draft, the reviewer's verdict
        backend.script("crew", "- The question is answered from the documents found.")
        backend.script("crew", "A short report written by the scripted crew.")
        backend.script("crew", "APPROVED")
    else:
        backend.script("generator", f"A scripted {route} answer.")


async def run_routing(
    client: httpx.AsyncClient, backend: Backend, limit: int | None = None, max_tokens: int = 128
) -> dict[str, Any]:
    items = select(read_jsonl(ROUTING), limit)
    rows = []
    for item in items:
        _script_turn(backend, item["route"])
        result = await turn(client, item["question"], TENANT, max_tokens=max_tokens)
        rows.append(
            {
                "id": item["id"],
                "label": item["route"],
                "route": result.route,
                "requested": result.requested,
                "ttft_s": rounded(result.ttft_s),
                "total_s": rounded(result.total_s),
                "error": result.error,
                "trace_id": result.trace_id,
            }
        )
    confusion = {label: dict.fromkeys(ROUTES, 0) for label in ROUTES}
    for row in rows:
        if row["route"] in ROUTES:
            confusion[row["label"]][row["route"]] += 1
    count = len(rows) or 1
    latency: dict[str, dict[str, float | int | None]] = {}
    for route in ROUTES:
        taken = [r for r in rows if r["route"] == route]
        ttft = [r["ttft_s"] for r in taken if r["ttft_s"] is not None]
        total = [r["total_s"] for r in taken]
        latency[route] = {
            "turns": len(taken),
            "ttft_p50_s": rounded(percentile(ttft, 0.5), 3),
            "ttft_p95_s": rounded(percentile(ttft, 0.95), 3),
            "total_p50_s": rounded(percentile(total, 0.5), 3),
            "total_p95_s": rounded(percentile(total, 0.95), 3),
        }
    per_label = {
        label: rounded(mean([float(r["route"] == label) for r in rows if r["label"] == label]))
        for label in ROUTES
    }
    return {
        "suite": "routing",
        "dataset": described(ROUTING),
        "backend": backend.kind,
        "questions": len(rows),
        "metrics": {
            "accuracy": rounded(sum(r["route"] == r["label"] for r in rows) / count),
            "classified": rounded(
                sum(r["requested"] is not None for r in rows) / count
            ),  # the router model's answer was usable (else: fallback to direct)
            "errors": sum(r["error"] is not None for r in rows),
        },
        "per_label_accuracy": per_label,
        "confusion": confusion,
        "latency": latency,
        "rows": rows,
    }
