"""`python -m bench`: run every benchmark, print the figures and save them as JSON under
bench/results/, with a description of the machine."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from bench import crew, memory, retrieval, runs, streaming, tracing

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--ttft-ms", type=int, default=50)
    parser.add_argument("--gap-ms", type=int, default=20)
    parser.add_argument("--levels", default="1,10,100", help="comma-separated concurrencies")
    parser.add_argument("--sizes", default="1000,10000,50000", help="retrieval collection sizes")
    parser.add_argument("--queries", type=int, default=50, help="retrieval queries per size")
    parser.add_argument("--qdrant-url", help="measure retrieval against this Qdrant server")
    parser.add_argument("--turns", type=int, default=300, help="checkpointer turns")
    parser.add_argument("--entities", type=int, default=10000, help="knowledge-graph size")
    parser.add_argument("--lookups", type=int, default=300, help="neighbourhood queries")
    parser.add_argument("--kickoffs", type=int, default=30, help="crew runs")
    parser.add_argument("--starts", type=int, default=3, help="service start-ups per variant")
    parser.add_argument("--runs", type=int, default=100, help="runs per measurement (runs)")
    parser.add_argument("--run-concurrency", type=int, default=20, help="concurrent runs")
    parser.add_argument("--turns-traced", type=int, default=200, help="chat turns (tracing)")
    parser.add_argument(
        "--only",
        choices=["streaming", "retrieval", "memory", "crew", "runs", "tracing"],
        help="run one benchmark",
    )
    args = parser.parse_args()
    if args.only in (None, "streaming"):
        levels = [int(v) for v in args.levels.split(",")]
        figures = streaming.run(args.tokens, args.ttft_ms, args.gap_ms, levels)
        _save("streaming", figures)
        print(markdown_table(figures["comparison"]))
    if args.only in (None, "retrieval"):
        sizes = tuple(int(v) for v in args.sizes.split(","))
        _save("retrieval", retrieval.run(sizes, args.queries, args.qdrant_url))
    if args.only in (None, "memory"):
        _save("memory", memory.run(args.turns, args.entities, args.lookups))
    if args.only in (None, "crew"):
        _save("crew", crew.run(args.kickoffs, args.starts))
    if args.only in (None, "runs"):
        _save("runs", runs.run(args.runs, args.run_concurrency))
    if args.only in (None, "tracing"):
        _save("tracing", tracing.run(args.turns_traced))


def _save(name: str, figures: dict[str, Any]) -> None:
    report = {"machine": machine(), "when": time.strftime("%Y-%m-%dT%H:%M:%S"), **figures}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {path}")


def markdown_table(comparison: list[dict[str, Any]]) -> str:
    """The comparison as the Markdown table docs/benchmarks.md shows."""
    lines = [
        "| streams | arrivals | added TTFT p50 | added TTFT p99 | total ratio p50 "
        "| total ratio p99 | errors | one event per token | server CPU per stream |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in comparison:
        cpu = row["server_cpu_ms_per_stream"]
        lines.append(
            f"| {row['concurrency']} | {row['arrivals']} | {row['added_ttft_p50_ms']:.1f} ms "
            f"| {row['added_ttft_p99_ms']:.1f} ms | {row['total_ratio_p50']:.3f} "
            f"| {row['total_ratio_p99']:.3f} | {row['errors']} "
            f"| {'yes' if row['one_event_per_token'] else 'no'} "
            f"| {cpu:.0f} ms |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
