"""Concurrency sweep: 1 to 200 concurrent streams through `POST /v1/chat/completions` (OpenAI
stream, direct route, judge off) against the scripted backend in its own process, which sends
every reply as `tokens` pieces, the first after `ttft_ms`, then one every `gap_ms`.

At each level, N clients each hold a keep-alive connection and run `rounds` streams back to
back; client i starts i/N of a stream's duration after the first, so N streams are open at once
and requests arrive evenly (the "staggered" pattern of bench/streaming.py). The same load is
sent straight to the backend first, so that what the service adds can be told from what the
backend takes. Per level: time to first token and the gap between tokens (p50, p95), errors,
streams completed per second, the service's CPU per stream and its resident memory (service
process and its children) at the peak of the level.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench._client import Connection, StreamSample
from bench._procs import footprint, tree_cpu_seconds
from bench._servers import chat_env, running, scripted_args, service_args
from switchboard.processes import free_port


@dataclass
class Level:
    target: str  # "backend" or "switchboard"
    streams_open: int
    streams: int
    errors: int
    error_kinds: list[str]
    ttft_p50_ms: float
    ttft_p95_ms: float
    gap_p50_ms: float
    gap_p95_ms: float
    gap_max_ms: float
    streams_per_s: float
    tokens_per_s: float
    one_event_per_token: bool
    wall_s: float
    server_cpu_ms_per_stream: float | None = None
    rss_peak_service_mib: float | None = None
    rss_peak_total_mib: float | None = None


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (`q` in 0..1); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def _sample_rss(pid: int, peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        now = footprint(pid)
        peak[0] = max(peak[0], now.service_mib)
        peak[1] = max(peak[1], now.total_mib)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def _level(
    target: str,
    port: int,
    model: str,
    streams_open: int,
    rounds: int,
    stream_s: float,
    tokens: int,
    server_pid: int | None,
) -> Level:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "Write an answer."}],
        "stream": True,
        "max_tokens": 1024,
    }
    if target == "switchboard":
        body |= {"route": "direct", "quality_check": False}
    path = "/v1/chat/completions"
    connections = [Connection("127.0.0.1", port, gaps=True) for _ in range(streams_open)]
    await asyncio.gather(*(c.stream(path, body) for c in connections))  # open and warm up
    cpu_before = tree_cpu_seconds(server_pid) if server_pid else 0.0
    peak = [0.0, 0.0]
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(server_pid, peak, stop)) if server_pid else None
    started = time.perf_counter()

    async def client(index: int, connection: Connection) -> list[StreamSample]:
        await asyncio.sleep(stream_s * index / streams_open)
        return [await connection.stream(path, body) for _ in range(rounds)]

    per_client = await asyncio.gather(*(client(i, c) for i, c in enumerate(connections)))
    wall = time.perf_counter() - started
    cpu = tree_cpu_seconds(server_pid) - cpu_before if server_pid else None
    stop.set()
    if sampler is not None:
        await sampler
    await asyncio.gather(*(c.close() for c in connections))
    samples = [s for client_samples in per_client for s in client_samples]
    good = [s for s in samples if s.error is None]
    gaps = [g for s in good for g in (s.gaps or [])]
    return Level(
        target=target,
        streams_open=streams_open,
        streams=len(samples),
        errors=len(samples) - len(good),
        error_kinds=sorted({s.error[:120] for s in samples if s.error}),
        ttft_p50_ms=round(percentile([s.ttft for s in good], 0.5) * 1000, 2),
        ttft_p95_ms=round(percentile([s.ttft for s in good], 0.95) * 1000, 2),
        gap_p50_ms=round(percentile(gaps, 0.5) * 1000, 2),
        gap_p95_ms=round(percentile(gaps, 0.95) * 1000, 2),
        gap_max_ms=round(max(gaps, default=float("nan")) * 1000, 2),
        streams_per_s=round(len(good) / wall, 2),
        tokens_per_s=round(sum(s.events for s in good) / wall, 1),
        one_event_per_token=all(s.events == tokens for s in good) and bool(good),
        wall_s=round(wall, 2),
        server_cpu_ms_per_stream=round(cpu * 1000 / len(samples), 1) if cpu is not None else None,
        rss_peak_service_mib=peak[0] if server_pid else None,
        rss_peak_total_mib=peak[1] if server_pid else None,
    )


def run(
    levels: Sequence[int] = (1, 10, 50, 100, 200),
    tokens: int = 32,
    ttft_ms: int = 50,
    gap_ms: int = 25,
    rounds: int = 3,
) -> dict[str, Any]:
    """Run the sweep and return its figures."""
    backend_port, service_port = free_port(), free_port()
    backend_url = f"http://127.0.0.1:{backend_port}/v1"
    stream_s = (ttft_ms + (tokens - 1) * gap_ms) / 1000
    results: list[Level] = []
    with (
        running(scripted_args(backend_port, tokens, ttft_ms, gap_ms), {}, f"{backend_url}/models"),
        running(
            service_args(service_port),
            chat_env(backend_url),
            f"http://127.0.0.1:{service_port}/readyz",
        ) as pid,
    ):
        for streams_open in levels:
            for target, port, model, server_pid in (
                ("backend", backend_port, "generator", None),
                ("switchboard", service_port, "switchboard", pid),
            ):
                level = asyncio.run(
                    _level(target, port, model, streams_open, rounds, stream_s, tokens, server_pid)
                )
                results.append(level)
                print(_describe(level), flush=True)
    sweep = []
    for ours in (r for r in results if r.target == "switchboard"):
        direct = next(
            r for r in results if r.target == "backend" and r.streams_open == ours.streams_open
        )
        sweep.append(
            {
                **asdict(ours),
                "backend_ttft_p50_ms": direct.ttft_p50_ms,
                "backend_gap_p50_ms": direct.gap_p50_ms,
                "added_ttft_p50_ms": round(ours.ttft_p50_ms - direct.ttft_p50_ms, 2),
                "added_ttft_p95_ms": round(ours.ttft_p95_ms - direct.ttft_p95_ms, 2),
            }
        )
    return {
        "benchmark": "concurrency_sweep",
        "config": {
            "levels": list(levels),
            "tokens": tokens,
            "ttft_ms": ttft_ms,
            "gap_ms": gap_ms,
            "rounds": rounds,
            "path": "POST /v1/chat/completions, stream, direct route, judge off",
            "service": "one uvicorn process, chat path only (graph, crew, memory off), auth off",
            "arrivals": "staggered: client i starts i/N of a stream's duration after the first",
        },
        "backend": [asdict(r) for r in results if r.target == "backend"],
        "sweep": sweep,
    }


def _describe(level: Level) -> str:
    return (
        f"{level.target:>11} streams={level.streams_open:<3} ttft p50 {level.ttft_p50_ms:7.1f} "
        f"p95 {level.ttft_p95_ms:7.1f} ms  gap p50 {level.gap_p50_ms:6.1f} p95 "
        f"{level.gap_p95_ms:6.1f} ms  {level.streams_per_s:6.1f} streams/s  "
        f"errors {level.errors}  rss {level.rss_peak_total_mib} MiB"
    )
