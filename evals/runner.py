"""`switchboard eval`: run the evaluation suites, print a table, write JSON, and (when Langfuse
is configured) record a dataset run with scores.

Suites: `routing` and `answers` run turns through the real service (the app on a loopback
port, in this process) in front of the chosen backend; `retrieval` ingests the corpus into a
Qdrant of its own with the same settings and asks the real `Retriever`. `--gate` compares the
results with `evals/baseline.json` and fails on a regression.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx

from evals import _langfuse
from evals._data import CORPUS, RESULTS, ROUTES, corpus_files
from evals._service import Backend, open_backend, service_settings, serving
from evals.gate import check, load_baseline
from switchboard.settings import Settings

SUITES = ("routing", "retrieval", "answers")


def main(args: argparse.Namespace, settings: Settings) -> int:
    """`switchboard eval` (its arguments are defined by `switchboard.cli`)."""
    suites = list(SUITES) if args.suite == "all" else [args.suite]
    results = asyncio.run(
        evaluate(settings, suites, args.backend, args.model, args.limit, args.max_tokens)
    )
    out: Path = args.out or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    for suite, result in results.items():
        (out / f"{suite}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(table(results))
    print(f"results written to {out}/")
    if args.gate:
        failures = check(results, load_baseline())
        for failure in failures:
            print(f"regression: {failure}", file=sys.stderr)
        return 1 if failures else 0
    return 0


async def evaluate(
    settings: Settings,
    suites: list[str],
    backend_spec: str,
    model: str | None = None,
    limit: int | None = None,
    max_tokens: int = 128,
) -> dict[str, dict[str, Any]]:
    """Run `suites` and return each one's result (metrics, per-item rows, dataset version)."""
    from evals.retrieval import open_index, run_retrieval

    results: dict[str, dict[str, Any]] = {}
    run_name = f"{time.strftime('%Y-%m-%dT%H:%M:%S')}-{backend_spec.split('/')[-1] or 'url'}"
    async with AsyncExitStack() as stack:
        backend = await stack.enter_async_context(open_backend(backend_spec, settings, model))
        data_dir = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="switchboard-eval-"))
        )
        configured = service_settings(settings, backend, data_dir)
        if "routing" in suites or "answers" in suites:
            url = stack.enter_context(serving(configured))
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30, read=600))
            )
            await _turn_suites(client, backend, configured, suites, limit, max_tokens, results)
        if "retrieval" in suites:
            async with open_index(configured, data_dir / "eval-qdrant") as index:
                # --limit is for the suites that ask a model; retrieval asks none.
                results["retrieval"] = await run_retrieval(index)
        for result in results.values():
            result["run"] = run_name
        # Recorded while the service (whose Langfuse client this process shares) still runs.
        recorded = await asyncio.to_thread(_langfuse.record, settings.tracing, run_name, results)
        for suite, name in recorded.items():
            results[suite]["langfuse_run"] = name
    return {suite: results[suite] for suite in SUITES if suite in results}


async def _turn_suites(
    client: httpx.AsyncClient,
    backend: Backend,
    settings: Settings,
    suites: list[str],
    limit: int | None,
    max_tokens: int,
    results: dict[str, dict[str, Any]],
) -> None:
    from evals._service import upload_corpus as _upload
    from evals.answers import TENANT, run_answers
    from evals.judge import Judge, calibrate
    from evals.routing import run_routing
    from switchboard.llm import LLMPool

    files = [(str(p.relative_to(CORPUS)), p.read_bytes()) for p in corpus_files()]
    upload_s = await _upload(client, files, TENANT)
    if "routing" in suites:
        results["routing"] = await run_routing(client, backend, limit, max_tokens)
        results["routing"]["corpus_upload_s"] = round(upload_s, 2)
    if "answers" in suites:
        llm = LLMPool(settings.llm, settings.llm.backends)
        try:
            script = (lambda text: backend.script("judge", text)) if backend.scripted else None
            judge = Judge(llm, script)
            answers = await run_answers(client, backend, judge, limit, max(max_tokens, 128))
            answers["judge"] = await calibrate(judge, None if limit is None else 2 * limit)
            results["answers"] = answers
        finally:
            await llm.aclose()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def table(results: dict[str, dict[str, Any]]) -> str:
    """The results as plain-text tables (also valid Markdown)."""
    lines: list[str] = []
    for suite, result in results.items():
        lines += [
            "",
            f"{suite} ({result['questions']} questions, dataset "
            f"{result['dataset']['version']}, backend {result.get('backend', '-')})",
            "",
        ]
        lines += ["| metric | value |", "| --- | --- |"]
        lines += [f"| {name} | {_cell(value)} |" for name, value in result["metrics"].items()]
        if suite == "routing":
            lines += [
                "",
                "| label \\ taken | " + " | ".join(ROUTES) + " |",
                "| --- |" + " --- |" * len(ROUTES),
            ]
            for label, row in result["confusion"].items():
                lines.append(f"| {label} | " + " | ".join(str(row[r]) for r in ROUTES) + " |")
            lines += [
                "",
                "| route | turns | ttft p50 s | ttft p95 s | total p50 s | total p95 s |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            for route, stats in result["latency"].items():
                lines.append(
                    f"| {route} | {stats['turns']} | {_cell(stats['ttft_p50_s'])} | "
                    f"{_cell(stats['ttft_p95_s'])} | {_cell(stats['total_p50_s'])} | "
                    f"{_cell(stats['total_p95_s'])} |"
                )
        if suite == "answers" and "judge" in result:
            judge = result["judge"]
            lines += [
                "",
                f"judge calibration ({judge['items']} items): support agreement "
                f"{_cell(judge['support_agreement'])}, relevance agreement "
                f"{_cell(judge['relevance_agreement'])}, unusable {judge['unusable']}",
            ]
        if suite == "retrieval":
            lines += [
                "",
                f"{result['chunks']} chunks, ingested in {result['ingest_s']} s; "
                f"misses: {', '.join(result['misses']) or 'none'}",
            ]
    return "\n".join(lines)


__all__ = ["SUITES", "evaluate", "main", "table"]
