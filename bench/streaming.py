"""Streaming overhead: time to first token and total time of a 256-token streamed reply through
`/v1/chat/completions` (direct route) versus straight to the same scripted backend, at several
concurrencies. Every process is real: the scripted backend and Switchboard each run in their own
process, and the load comes from this one.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from bench._client import Connection, StreamSample
from bench._procs import cpu_seconds
from bench._servers import running
from switchboard.processes import free_port


@dataclass
class LevelResult:
    target: str
    arrivals: str  # "burst" or "staggered"
    concurrency: int
    streams: int
    errors: int
    ttft_p50_ms: float
    ttft_p99_ms: float
    total_p50_ms: float
    total_p99_ms: float
    events_per_stream: list[int]
    error_kinds: list[str]
    wall_s: float
    server_cpu_ms_per_stream: float | None


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _level(
    target: str,
    base_url: str,
    model: str,
    concurrency: int,
    rounds: int,
    server_pid: int | None,
    stagger: float,
) -> LevelResult:
    """`concurrency` clients, each running `rounds` streams back to back on its own connection.
    With `stagger` 0 they all start together and, as every reply takes the same time, stay in
    lock-step (a burst of simultaneous requests each round); with `stagger` = one stream's
    duration, client i starts i/concurrency of it later, so requests arrive evenly spread while
    `concurrency` streams are always open."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "Write a long answer."}],
        "stream": True,
        "max_tokens": 512,
    }
    if target == "switchboard":
        body |= {"route": "direct", "quality_check": False}
    host, port = urlsplit(base_url).hostname or "127.0.0.1", urlsplit(base_url).port or 80
    path = f"{urlsplit(base_url).path}/chat/completions"
    # One keep-alive connection per concurrent client, as a pooled HTTP client would hold.
    connections = [Connection(host, port) for _ in range(concurrency)]
    await asyncio.gather(*(c.stream(path, body) for c in connections))  # warm up
    cpu_before = cpu_seconds(server_pid) if server_pid else None
    started = time.perf_counter()

    async def client(index: int, connection: Connection) -> list[StreamSample]:
        await asyncio.sleep(stagger * index / concurrency)
        return [await connection.stream(path, body) for _ in range(rounds)]

    per_client = await asyncio.gather(*(client(i, c) for i, c in enumerate(connections)))
    samples = [sample for samples in per_client for sample in samples]
    wall = time.perf_counter() - started
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid and cpu_before is not None else None
    await asyncio.gather(*(c.close() for c in connections))
    good = [s for s in samples if s.error is None]
    return LevelResult(
        target=target,
        arrivals="staggered" if stagger else "burst",
        concurrency=concurrency,
        streams=len(samples),
        errors=len(samples) - len(good),
        ttft_p50_ms=_percentile([s.ttft for s in good], 0.5) * 1000,
        ttft_p99_ms=_percentile([s.ttft for s in good], 0.99) * 1000,
        total_p50_ms=_percentile([s.total for s in good], 0.5) * 1000,
        total_p99_ms=_percentile([s.total for s in good], 0.99) * 1000,
        events_per_stream=sorted({s.events for s in samples}),
        error_kinds=sorted({s.error[:120] for s in samples if s.error}),
        wall_s=wall,
        server_cpu_ms_per_stream=(cpu * 1000 / len(samples)) if cpu is not None else None,
    )


def run(
    tokens: int = 256, ttft_ms: int = 50, gap_ms: int = 20, levels: Sequence[int] = (1, 10, 100)
) -> dict[str, Any]:
    """Run the benchmark and return its figures."""
    backend_port, service_port = free_port(), free_port()
    backend_args = [
        sys.executable, "-m", "tests.backends.scripted", "--port", str(backend_port),
        "--text-tokens", str(tokens), "--ttft-ms", str(ttft_ms), "--gap-ms", str(gap_ms),
    ]  # fmt: skip
    backend_url = f"http://127.0.0.1:{backend_port}/v1"
    service_env = {
        "SWITCHBOARD_LLM__BACKENDS": json.dumps(
            [{"name": "scripted", "base_url": backend_url, "model": "scripted"}]
        ),
        "SWITCHBOARD_SERVER__LOG_LEVEL": "warning",
        "SWITCHBOARD_LOCAL__MODE": "off",
        # As the peers: no authentication (issue 8 adds it; a cached key costs no round trip).
        "SWITCHBOARD_AUTH__MODE": "off",
    }
    service_args = [
        sys.executable, "-m", "uvicorn", "--factory", "api.app:app_from_environment",
        "--host", "127.0.0.1", "--port", str(service_port), "--log-level", "warning",
        "--no-access-log",
        # Staggered clients wait up to one stream's duration (over 5 s when streams queue) on
        # their warmed-up connection before their first request; uvicorn's default 5 s keep-alive
        # would close some of them under the client, which does not reconnect.
        "--timeout-keep-alive", "60",
    ]  # fmt: skip
    stream_seconds = (ttft_ms + tokens * gap_ms) / 1000
    results: list[LevelResult] = []
    with (
        running(backend_args, {}, f"{backend_url}/models"),
        running(service_args, service_env, f"http://127.0.0.1:{service_port}/healthz") as pid,
    ):
        for concurrency in levels:
            rounds = 5 if concurrency == 1 else 3
            patterns = [0.0] if concurrency == 1 else [0.0, stream_seconds]
            for stagger in patterns:
                for target, url, model, server_pid in (
                    ("backend", backend_url, "scripted", None),
                    ("switchboard", f"http://127.0.0.1:{service_port}/v1", "switchboard", pid),
                ):
                    level = asyncio.run(
                        _level(target, url, model, concurrency, rounds, server_pid, stagger)
                    )
                    results.append(level)
                    print(_describe(level), flush=True)
    comparison = []
    for ours in results:
        if ours.target != "switchboard":
            continue
        direct = next(
            r
            for r in results
            if r.target == "backend"
            and r.concurrency == ours.concurrency
            and r.arrivals == ours.arrivals
        )
        comparison.append(
            {
                "concurrency": ours.concurrency,
                "arrivals": ours.arrivals,
                "added_ttft_p50_ms": round(ours.ttft_p50_ms - direct.ttft_p50_ms, 2),
                "added_ttft_p99_ms": round(ours.ttft_p99_ms - direct.ttft_p99_ms, 2),
                "total_ratio_p50": round(ours.total_p50_ms / direct.total_p50_ms, 4),
                "total_ratio_p99": round(ours.total_p99_ms / direct.total_p99_ms, 4),
                "errors": ours.errors,
                "one_event_per_token": ours.events_per_stream == [tokens],
                "server_cpu_ms_per_stream": ours.server_cpu_ms_per_stream,
            }
        )
    return {
        "benchmark": "streaming_overhead",
        "config": {"tokens": tokens, "ttft_ms": ttft_ms, "gap_ms": gap_ms, "levels": list(levels)},
        "levels": [asdict(r) for r in results],
        "comparison": comparison,
    }


def _describe(level: LevelResult) -> str:
    return (
        f"{level.target:>11} c={level.concurrency:<3} {level.arrivals:<9} "
        f"ttft p50 {level.ttft_p50_ms:7.1f} ms p99 {level.ttft_p99_ms:7.1f} ms  "
        f"total p50 {level.total_p50_ms:7.1f} ms p99 {level.total_p99_ms:7.1f} ms  "
        f"errors {level.errors}  events/stream {level.events_per_stream}"
    )
