"""Recording an evaluation in Langfuse, when tracing is configured: per suite, a dataset
(`switchboard-<suite>`) with one item per question, and a dataset run (Langfuse's SDK v5 calls
it an experiment) named after this evaluation, whose item runs carry the item's scores and whose
run carries the suite's metrics.

The turns themselves already happened (they are traced by the service, one trace per run, and
the row names its trace id); the dataset run's task hands back what they produced.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from switchboard.settings import TracingSettings

log = logging.getLogger(__name__)

_EXPECTED = {"routing": "label", "retrieval": "relevant", "answers": None}
_SCORES = {
    "routing": ("correct",),
    "retrieval": ("reciprocal_rank", "hit@1", "hit@5", "hit@10"),
    "answers": ("faithfulness", "relevance", "fact_recall", "document_recall"),
}


def configured(settings: TracingSettings) -> bool:
    return bool(settings.enabled and settings.public_key and settings.secret_key is not None)


def _scores(suite: str, row: dict[str, Any]) -> dict[str, float]:
    if suite == "routing":
        values: dict[str, Any] = {"correct": float(row["route"] == row["label"])}
    elif suite == "retrieval":
        rank = row["rank"]
        values = {"reciprocal_rank": 1 / rank if rank else 0.0}
        values |= {f"hit@{k}": float(rank is not None and rank <= k) for k in (1, 5, 10)}
    else:
        values = {name: row.get(name) for name in _SCORES["answers"]}
    return {name: float(v) for name, v in values.items() if v is not None}


def record(
    settings: TracingSettings, run_name: str, results: dict[str, dict[str, Any]]
) -> dict[str, str]:
    """Record each suite's dataset run; the run name per suite (empty when tracing is off)."""
    if not configured(settings) or settings.secret_key is None:
        return {}
    from langfuse import Evaluation, Langfuse

    client = Langfuse(
        public_key=settings.public_key,
        secret_key=settings.secret_key.get_secret_value(),
        base_url=settings.base_url,
        timeout=settings.export_timeout_s,
    )
    recorded = {}
    for suite, result in results.items():
        dataset = f"switchboard-{suite}"
        client.create_dataset(
            name=dataset,
            description=f"Switchboard's {suite} evaluation ({result['dataset']['file']})",
            metadata={"dataset_version": result["dataset"]["version"]},
        )
        rows = {row["id"]: row for row in result["rows"]}
        items = [
            client.create_dataset_item(
                dataset_name=dataset,
                id=f"{dataset}-{row['id']}",
                input={"id": row["id"]},
                expected_output=row.get(_EXPECTED[suite] or "", None),
                metadata={"dataset_version": result["dataset"]["version"]},
            )
            for row in rows.values()
        ]

        def task(*, item: Any, rows: dict[str, Any] = rows, **kwargs: Any) -> Any:
            return rows[item.input["id"]]

        def scores(*, output: Any, suite: str = suite, **kwargs: Any) -> list[Any]:
            return [Evaluation(name=n, value=v) for n, v in _scores(suite, output).items()]

        def summary(*, metrics: dict[str, Any] = result["metrics"], **kwargs: Any) -> list[Any]:
            return [
                Evaluation(name=n, value=float(v))
                for n, v in metrics.items()
                if isinstance(v, int | float)
            ]

        client.run_experiment(
            name=dataset,
            run_name=run_name,
            description=f"switchboard eval --suite {suite}",
            data=items,
            task=cast(Any, task),
            evaluators=[cast(Any, scores)],
            run_evaluators=[cast(Any, summary)],
            max_concurrency=4,
            metadata={"backend": str(result.get("backend", "")), "run": run_name},
        )
        recorded[suite] = run_name
    client.flush()
    return recorded
