"""`python -m bench`: run every benchmark (or those named with --only), print the figures, save
them as JSON under bench/results/ (each with a description of the machine and its load), draw
the plots (bench/results/plots/*.png) and read every goal against the results
(bench/results/goals.md). `--quick` is a smoke run with small sizes, saved under
bench/results/quick/ so that it never replaces the figures of a full run."""

from __future__ import annotations

import argparse
import json
import subprocess
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import goals, plots
from bench._machine import Session

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = (
    "streaming",
    "concurrency",
    "footprint",
    "peers",
    "runs",
    "retrieval",
    "memory",
    "crew",
    "tracing",
)
QUICK = {
    "tokens": 32,
    "levels": "1,10",
    "sizes": "1000",
    "queries": 10,
    "turns": 30,
    "entities": 1000,
    "lookups": 30,
    "kickoffs": 5,
    "starts": 1,
    "runs": 20,
    "turns_traced": 20,
    "sweep": "1,10,50",
    "sweep_rounds": 1,
    "sweep_tokens": 16,
    "launches": 1,
    "load_streams": 20,
    "load_s": 3.0,
    "peer_requests": 20,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        help=f"comma-separated benchmarks to run, of: {', '.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: small sizes, saved under results/quick/"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: redraw the plots and the goals table from the saved results",
    )
    parser.add_argument("--results", type=Path, help="results folder (default: bench/results/)")
    streaming = parser.add_argument_group("streaming")
    streaming.add_argument("--tokens", type=int, default=256)
    streaming.add_argument("--ttft-ms", type=int, default=50)
    streaming.add_argument("--gap-ms", type=int, default=20)
    streaming.add_argument("--levels", default="1,10,100", help="comma-separated concurrencies")
    sweep = parser.add_argument_group("concurrency (the sweep)")
    sweep.add_argument("--sweep", default="1,10,50,100,200", help="concurrent streams per level")
    sweep.add_argument("--sweep-rounds", type=int, default=3, help="streams per client per level")
    sweep.add_argument("--sweep-tokens", type=int, default=32)
    sweep.add_argument("--sweep-ttft-ms", type=int, default=50)
    sweep.add_argument("--sweep-gap-ms", type=int, default=25)
    foot = parser.add_argument_group("footprint (cold start, RSS)")
    foot.add_argument("--launches", type=int, default=3, help="service launches timed")
    foot.add_argument("--load-streams", type=int, default=100, help="concurrent streams (loaded)")
    foot.add_argument("--load-s", type=float, default=20.0, help="seconds of load")
    peer = parser.add_argument_group("peers (PEERS.md side by side)")
    peer.add_argument("--peer-requests", type=int, default=100, help="requests per measurement")
    other = parser.add_argument_group("the other benchmarks")
    other.add_argument(
        "--sizes",
        default="1000,10000",
        help="retrieval collection sizes (50000 adds about 6 minutes: --sizes 1000,10000,50000)",
    )
    other.add_argument("--queries", type=int, default=50, help="retrieval queries per size")
    other.add_argument("--qdrant-url", help="measure retrieval against this Qdrant server")
    other.add_argument("--turns", type=int, default=300, help="checkpointer turns")
    other.add_argument(
        "--entities",
        type=int,
        default=12500,
        help="knowledge-graph vocabulary (about 10k entities)",
    )
    other.add_argument("--lookups", type=int, default=300, help="neighbourhood queries")
    other.add_argument("--kickoffs", type=int, default=30, help="crew runs")
    other.add_argument("--starts", type=int, default=3, help="service start-ups per variant")
    other.add_argument("--runs", type=int, default=100, help="runs per measurement (runs)")
    other.add_argument("--run-concurrency", type=int, default=20, help="concurrent runs")
    other.add_argument("--turns-traced", type=int, default=200, help="chat turns (tracing)")
    return parser


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def _benchmarks(args: argparse.Namespace) -> dict[str, Callable[[], dict[str, Any]]]:
    """Each benchmark as a call with its arguments (imported when it runs: some import heavy
    libraries)."""

    def streaming() -> dict[str, Any]:
        from bench import streaming

        figures = streaming.run(args.tokens, args.ttft_ms, args.gap_ms, _ints(args.levels))
        print(markdown_table(figures["comparison"]))
        return figures

    def concurrency() -> dict[str, Any]:
        from bench import concurrency

        return concurrency.run(
            _ints(args.sweep),
            args.sweep_tokens,
            args.sweep_ttft_ms,
            args.sweep_gap_ms,
            args.sweep_rounds,
        )

    def footprint() -> dict[str, Any]:
        from bench import footprint

        return footprint.run(args.launches, args.load_streams, args.load_s)

    def peers() -> dict[str, Any]:
        from bench import peers

        return peers.run(args.peer_requests)

    def runs() -> dict[str, Any]:
        from bench import runs

        return runs.run(args.runs, args.run_concurrency)

    def retrieval() -> dict[str, Any]:
        from bench import retrieval

        return retrieval.run(tuple(_ints(args.sizes)), args.queries, args.qdrant_url)

    def memory() -> dict[str, Any]:
        from bench import memory

        return memory.run(args.turns, args.entities, args.lookups)

    def crew() -> dict[str, Any]:
        from bench import crew

        return crew.run(args.kickoffs, args.starts)

    def tracing() -> dict[str, Any]:
        from bench import tracing

        return tracing.run(args.turns_traced)

    calls = {
        "streaming": streaming,
        "concurrency": concurrency,
        "footprint": footprint,
        "peers": peers,
        "runs": runs,
        "retrieval": retrieval,
        "memory": memory,
        "crew": crew,
        "tracing": tracing,
    }
    assert tuple(calls) == BENCHMARKS
    return calls


def main() -> None:
    parser = _parser()
    args = parser.parse_args()
    if args.quick:
        parser.set_defaults(**QUICK)
        args = parser.parse_args()
    results: Path = args.results or (RESULTS / "quick" if args.quick else RESULTS)
    chosen = list(BENCHMARKS) if not args.only else args.only.split(",")
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown}; choose from {', '.join(BENCHMARKS)}")
    failed: list[str] = []
    whole = Session()
    if not args.report_only and {"peers", "runs"} & set(chosen):
        _peer_setup()
    if not args.report_only:
        calls = _benchmarks(args)
        for name in chosen:
            print(f"== {name}", flush=True)
            session = Session()
            try:
                figures = calls[name]()
            except Exception:  # one benchmark failing must not lose the others' figures
                traceback.print_exc()
                failed.append(name)
                continue
            _save(results, name, figures, session)
    for path in plots.render(results):
        print(f"plot {path}")
    print(goals.write(results))
    print(f"goals: {results / 'goals.md'}")
    summary = whole.finish()
    print(
        f"took {summary['duration_s']:.0f} s; load average {summary['load_average_start']} "
        f"at the start, {summary['load_average_end']} at the end"
    )
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


def _peer_setup() -> None:
    """The peer's virtual environment (`langgraph dev`), installed once from PyPI when it is
    missing (bench/peer/setup.sh; about a minute); without it the peer rows say so."""
    if (RESULTS.parent.parent / ".venv-peer" / "bin" / "langgraph").exists():
        return
    print("== installing the peer (bench/peer/setup.sh)", flush=True)
    done = subprocess.run(["bash", str(RESULTS.parent / "peer" / "setup.sh")], check=False)
    if done.returncode:
        print(f"bench/peer/setup.sh failed ({done.returncode}): the peer is not measured")


def _save(results: Path, name: str, figures: dict[str, Any], session: Session) -> None:
    machine = session.finish()
    report = {"machine": machine, "when": machine["started"], "quick": results.name == "quick"}
    results.mkdir(parents=True, exist_ok=True)
    if report["quick"]:  # smoke-run figures are not for keeping
        (results / ".gitignore").write_text("*\n")
    path = results / f"{name}.json"
    path.write_text(json.dumps(report | figures, indent=2) + "\n")
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
