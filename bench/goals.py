"""Every performance goal (../shared/PEERS.md's and the issues'), read against the latest result
JSONs: the figure, met or not, and the command that measures it. `python -m bench` prints this
table and saves it as goals.md and goals.json beside the results."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

Results = dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Goal:
    source: str
    goal: str
    figure: str
    met: bool | None  # None: not measured
    command: str


def load(results: Path) -> Results:
    """Every result JSON in `results`, by benchmark name."""
    return {
        p.stem: json.loads(p.read_text())
        for p in sorted(results.glob("*.json"))
        if p.stem != "goals"
    }


def _ms(value: float) -> str:
    return f"{value:,.1f} ms"


def _streaming_row(r: Results, concurrency: int, arrivals: str) -> dict[str, Any]:
    return next(
        row
        for row in r["streaming"]["comparison"]
        if row["concurrency"] == concurrency and row["arrivals"] == arrivals
    )


def _peer(r: Results, server: str) -> dict[str, Any]:
    value: dict[str, Any] = r["peers"]["servers"][server]
    return value


def _goals() -> list[tuple[str, str, str, Callable[[Results], tuple[str, bool]]]]:
    def ttft1(r: Results) -> tuple[str, bool]:
        v = _peer(r, "switchboard_openai")["added_ttft_ms_p50_1_client"]
        return f"{_ms(v)} (OpenAI stream)", v <= 5

    def ttft10(r: Results) -> tuple[str, bool]:
        v = _peer(r, "switchboard_openai")["added_ttft_ms_p50_10_clients"]
        return f"{_ms(v)} (OpenAI stream)", v <= 10

    def cpu(r: Results) -> tuple[str, bool]:
        v = _peer(r, "switchboard_openai")["cpu_ms_per_request"]
        return f"{_ms(v)} (OpenAI stream)", v <= 8

    def throughput(r: Results) -> tuple[str, bool]:
        ours = _peer(r, "switchboard_custom")
        peer = _peer(r, "langgraph_dev_poll_5ms_custom")
        if not isinstance(peer, dict):
            raise KeyError("peer")
        ratio = ours["requests_per_s_10_clients"] / peer["requests_per_s_10_clients"]
        return (
            f"{ratio:.2f}x ({ours['requests_per_s_10_clients']:.0f} vs "
            f"{peer['requests_per_s_10_clients']:.0f} req/s, `runs/stream` custom)",
            ratio >= 3,
        )

    def event_size(r: Results) -> tuple[str, bool]:
        v = _peer(r, "switchboard_messages_tuple")["bytes_per_token_event"]
        return f"{v:.0f} B (`messages-tuple`)", v <= 300

    def s_ttft1(r: Results) -> tuple[str, bool]:
        v = _streaming_row(r, 1, "burst")["added_ttft_p50_ms"]
        return _ms(v), v <= 5

    def s_ttft10(r: Results) -> tuple[str, bool]:
        row = _streaming_row(r, 10, "staggered")
        return (
            f"p50 {_ms(row['added_ttft_p50_ms'])}, p99 {_ms(row['added_ttft_p99_ms'])}",
            row["added_ttft_p50_ms"] <= 10 and row["added_ttft_p99_ms"] <= 20,
        )

    def s_ratio(r: Results) -> tuple[str, bool]:
        worst = max(row["total_ratio_p50"] for row in r["streaming"]["comparison"])
        return f"worst p50 {worst:.3f}", worst <= 1.10

    def s_errors(r: Results) -> tuple[str, bool]:
        rows = r["streaming"]["comparison"]
        errors = sum(row["errors"] for row in rows)
        one = all(row["one_event_per_token"] for row in rows)
        return f"{errors} errors; one event per token: {'yes' if one else 'no'}", not errors and one

    def ingest(r: Results) -> tuple[str, bool]:
        rows = r["retrieval"]["ingestion"]
        row = max(rows, key=lambda x: x["words_per_chunk"])
        return (
            f"{row['chunks_per_s']:.0f} chunks/s ({row['words_per_chunk']}-word chunks)",
            row["chunks_per_s"] >= 300,
        )

    def retrieval(r: Results) -> tuple[str, bool]:
        row = next(x for x in r["retrieval"]["latency"] if x["chunks"] == 10000)
        return (
            f"p50 {_ms(row['p50_ms'])}, p99 {_ms(row['p99_ms'])}",
            row["p50_ms"] <= 50 and row["p99_ms"] <= 150,
        )

    def checkpointer(r: Results) -> tuple[str, bool]:
        c = r["memory"]["checkpointer"]
        return (
            f"{_ms(c['short_threads_overhead_ms_mean'])} (10-turn threads), "
            f"{_ms(c['overhead_ms_mean'])} at {c['turns']} turns",
            max(c["short_threads_overhead_ms_mean"], c["overhead_ms_mean"]) <= 15,
        )

    def two_hop(r: Results) -> tuple[str, bool]:
        g = r["memory"]["graph"]
        return f"{_ms(g['two_hop_p50_ms'])} at {g['entities']:,} entities", g[
            "two_hop_p50_ms"
        ] <= 20

    def crew(r: Results) -> tuple[str, bool]:
        v = r["crew"]["overhead"]["overhead_ms_per_kickoff_p50"]
        return _ms(v), v <= 150

    def startup(r: Results) -> tuple[str, bool]:
        s = r["crew"]["startup"]
        return (
            f"{s['ready_s_with_crew_p50']:.2f} s p50, {s['ready_s_with_crew_max']:.2f} s max",
            s["ready_s_with_crew_p50"] <= 3,
        )

    def runs(r: Results) -> tuple[str, bool]:
        peer = r["runs"]["langgraph_dev_poll_5ms"]
        if not isinstance(peer, dict):
            raise KeyError("peer")
        ratio = peer["our_added_latency_ratio"]
        return (
            f"{ratio:.2f}x ({_ms(r['runs']['switchboard']['added_ms_p50'])} vs "
            f"{_ms(peer['added_ms_p50'])})",
            ratio <= 0.5,
        )

    def tracing(r: Results) -> tuple[str, bool]:
        t = r["tracing"]
        live = t["on, Langfuse answering"]["p50_ms"]
        down = max(t["on, connection refused"]["p50_ms"], t["on, Langfuse never answers"]["p50_ms"])
        errors = sum(v["errors"] for v in t.values() if isinstance(v, dict) and "errors" in v)
        return (
            f"down {_ms(down)} vs answering {_ms(live)} p50; {errors} errors",
            down <= live + 2 and not errors,
        )

    peers = "python -m bench --only peers"
    return [
        ("PEERS.md", "added TTFT p50 ≤ 5 ms, 1 client", peers, ttft1),
        ("PEERS.md", "added TTFT p50 ≤ 10 ms, 10 clients", peers, ttft10),
        ("PEERS.md", "CPU per streamed 12-token reply ≤ 8 ms", peers, cpu),
        ("PEERS.md", "requests/s ≥ 3x the patched LangGraph server", peers, throughput),
        ("PEERS.md", "≤ 300 bytes per token event (`messages-tuple`)", peers, event_size),
        (
            "issue 2",
            "added TTFT p50 ≤ 5 ms, 1 stream (256 tokens)",
            "python -m bench --only streaming",
            s_ttft1,
        ),
        (
            "issue 2",
            "added TTFT p50 ≤ 10 ms and p99 ≤ 20 ms, 10 streams",
            "python -m bench --only streaming",
            s_ttft10,
        ),
        (
            "issue 2",
            "total time ratio p50 ≤ 1.10 at every level",
            "python -m bench --only streaming",
            s_ratio,
        ),
        (
            "issue 2",
            "no errors up to 100 streams, one event per token",
            "python -m bench --only streaming",
            s_errors,
        ),
        ("issue 3", "ingestion ≥ 300 chunks/s", "python -m bench --only retrieval", ingest),
        (
            "issue 3",
            "retrieval p50 ≤ 50 ms, p99 ≤ 150 ms at 10k chunks",
            "python -m bench --only retrieval",
            retrieval,
        ),
        (
            "issue 4",
            "checkpointer overhead ≤ 15 ms per turn",
            "python -m bench --only memory",
            checkpointer,
        ),
        (
            "issue 4",
            "2-hop neighbourhood p50 ≤ 20 ms at 10k entities",
            "python -m bench --only memory",
            two_hop,
        ),
        ("issue 5", "crew overhead ≤ 150 ms per kickoff", "python -m bench --only crew", crew),
        ("issue 5", "start-up ≤ 3 s with CrewAI installed", "python -m bench --only crew", startup),
        (
            "issue 6",
            "runs path added latency ≤ 0.5x the patched `langgraph dev`",
            "python -m bench --only runs",
            runs,
        ),
        (
            "issue 7",
            "a Langfuse that is down costs no more than one that answers; no errors",
            "python -m bench --only tracing",
            tracing,
        ),
    ]


def evaluate(results: Results) -> list[Goal]:
    """Each goal against the results that are there (`met` None where they are not)."""
    goals = []
    for source, text, command, check in _goals():
        try:
            figure, met = check(results)
        except (KeyError, StopIteration, TypeError, ValueError, ZeroDivisionError):
            goals.append(Goal(source, text, "not measured", None, command))
            continue
        goals.append(Goal(source, text, figure, bool(met), command))
    return goals


def markdown(goals: list[Goal]) -> str:
    """The goals as the Markdown table docs/benchmarks.md shows."""
    lines = ["| from | goal | figure | met | command |", "| --- | --- | --- | --- | --- |"]
    for g in goals:
        met = "—" if g.met is None else ("**met**" if g.met else "**not met**")
        lines.append(f"| {g.source} | {g.goal} | {g.figure} | {met} | `{g.command}` |")
    return "\n".join(lines)


def write(results: Path) -> str:
    """Evaluate the goals against `results`, save goals.md and goals.json there, and return the
    table."""
    goals = evaluate(load(results))
    table = markdown(goals)
    (results / "goals.md").write_text(table + "\n")
    (results / "goals.json").write_text(json.dumps([asdict(g) for g in goals], indent=2) + "\n")
    return table
