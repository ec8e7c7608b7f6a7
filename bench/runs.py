"""Runs through the durable queue, beside the same graph served by `langgraph dev`.

Both servers run the router workflow (route pinned to `direct`, judge off) against the scripted
backend answering at once (in a process of its own), and are driven by the same `langgraph-sdk`
client code:
- latency: sequential `runs.wait` on a thread, p50 and p95, minus the p50 of the same graph
  executed in this process (`graph.ainvoke`, no server, no checkpointer) — the server's added
  latency: for Switchboard the API, the Redis queue, the worker, the event Stream and the Redis
  checkpointer; for `langgraph dev` its API, its in-memory queue and checkpointer. The baseline
  runs as the servers run the graph: on uvloop, its backend in another process (with the backend
  in this process's thread and the default loop it took 8.4 ms instead of 5.4, which the
  servers' figures then seemed to save);
- time to first token of `runs.stream` (custom mode), sequential, p50;
- throughput: `runs.wait` calls at a fixed concurrency, each on its own thread, runs per second.

The peer is measured twice: stock, and with its idle queue poll cut from 0.5 s to 5 ms (stock
`langgraph dev` starts a run up to a second late; ../shared/PEERS.md asks for both rows). It needs
its own virtual environment (`bench/peer/setup.sh`, once); without it only Switchboard's figures
are taken and the comparison says so.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop
from langgraph_sdk import get_client

from bench._servers import ROOT, running, scripted_args
from graphs.router import RouterContext, build_router_graph
from switchboard.llm import LLMPool
from switchboard.processes import free_port
from switchboard.settings import BackendConfig, LLMSettings, QualitySettings, RouterSettings

T = TypeVar("T")
PEER_VENV = ROOT / ".venv-peer"
ANSWER = " ".join(f"t{i}" for i in range(20))  # 20 tokens
MESSAGE: dict[str, Any] = {"messages": [{"role": "user", "content": "Say twenty tokens."}]}


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """On uvloop, as both servers run (uvicorn picks it when installed)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


async def _in_process(url: str, runs: int) -> list[float]:
    """The graph alone, executed here: what a run costs without any server."""
    backend = BackendConfig.model_validate({"name": "s", "base_url": url, "model": "generator"})
    llm = LLMPool(LLMSettings(backends=[backend]), [backend])
    context = RouterContext(
        llm=llm,
        router=RouterSettings(),
        quality=QualitySettings(enabled=False),
        max_tokens=256,
        route="direct",
    )
    graph = build_router_graph()
    times = []
    try:
        for _ in range(runs + 3):
            started = time.perf_counter()
            result = await graph.ainvoke(MESSAGE, context=context)  # type: ignore[call-overload]
            times.append(time.perf_counter() - started)
            assert result["answer"] == ANSWER
    finally:
        await llm.aclose()
    return times[3:]


async def _server(
    url: str, assistant: str, context: dict[str, Any], runs: int, concurrency: int
) -> dict[str, Any]:
    client = get_client(url=url, headers={"X-Switchboard-Tenant": "bench"})
    try:
        waits: list[float] = []
        for _ in range(runs + 3):
            thread = await client.threads.create()
            started = time.perf_counter()
            final = await client.runs.wait(
                thread["thread_id"], assistant, input=MESSAGE, context=context
            )
            waits.append(time.perf_counter() - started)
            assert isinstance(final, dict) and final.get("answer") == ANSWER, final
        firsts: list[float] = []
        for _ in range(runs + 3):
            thread = await client.threads.create()
            started = time.perf_counter()
            async for part in client.runs.stream(
                thread["thread_id"], assistant, input=MESSAGE, context=context, stream_mode="custom"
            ):
                if part.event == "custom" and _is_token(part.data):
                    firsts.append(time.perf_counter() - started)
                    break
        threads = [(await client.threads.create())["thread_id"] for _ in range(runs)]
        gate = asyncio.Semaphore(concurrency)

        async def one(thread_id: str) -> None:
            async with gate:
                final = await client.runs.wait(thread_id, assistant, input=MESSAGE, context=context)
                assert isinstance(final, dict) and final.get("answer") == ANSWER, final

        started = time.perf_counter()
        await asyncio.gather(*(one(t) for t in threads))
        elapsed = time.perf_counter() - started
    finally:
        await client.aclose()
    return {
        "wait_ms_p50": _ms(waits[3:], 0.5),
        "wait_ms_p95": _ms(waits[3:], 0.95),
        "first_token_ms_p50": _ms(firsts[3:], 0.5),
        "throughput_runs_per_s": round(runs / elapsed, 1),
    }


def _is_token(data: Any) -> bool:
    """A token in either server's custom stream: Switchboard wraps its events
    ({"event": "token", ...}); the peer's graph forwards the router's `Event` as written."""
    if isinstance(data, dict):
        return data.get("event") == "token" or data.get("kind") == "token"
    return False


def _switchboard(backend_url: str, runs: int, concurrency: int) -> dict[str, Any]:
    port = free_port()
    entry = {
        "name": "s",
        "base_url": backend_url,
        "models": {
            r: r for r in ("router", "generator", "judge", "embeddings", "extractor", "crew")
        },
    }
    env = {
        "SWITCHBOARD_LLM__BACKENDS": json.dumps([entry]),
        "SWITCHBOARD_SERVER__DATA_DIR": tempfile.mkdtemp(prefix="bench-runs-"),
        "SWITCHBOARD_GRAPH__ENABLED": "false",
        "SWITCHBOARD_CREW__ENABLED": "false",
        "SWITCHBOARD_EMBEDDINGS__MODE": "backend",
        "SWITCHBOARD_MEMORY__ENABLED": "false",
        # As the peers: no authentication (issue 8 adds it; a cached key costs no round trip).
        "SWITCHBOARD_AUTH__MODE": "off",
    }
    args = [
        sys.executable, "-m", "uvicorn", "--factory", "api.app:app_from_environment",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with running(args, env, f"{url}/readyz"):
        context = {"route": "direct", "quality_check": False}
        return _run(_server(url, "switchboard", context, runs, concurrency))


def _peer(
    backend_url: str, runs: int, concurrency: int, idle_poll_ms: int | None
) -> dict[str, Any] | str:
    """`langgraph dev` with its defaults (one job at a time; its in-memory queue), serving the
    router graph through `bench/peer/graph.py` (`bench/peer/README.md`); with `idle_poll_ms`,
    its idle queue poll cut from 0.5 s to that (the "patched" row of ../shared/PEERS.md)."""
    if not (PEER_VENV / "bin" / "langgraph").exists():
        return "not measured: run bench/peer/setup.sh once to install langgraph-cli[inmem]"
    port = free_port()
    args = ["bash", str(ROOT / "bench" / "peer" / "start.sh")]
    env = {"PEER_BACKEND_URL": backend_url, "PEER_PORT": str(port)}
    if idle_poll_ms is not None:
        env["PEER_IDLE_POLL_MS"] = str(idle_poll_ms)
    url = f"http://127.0.0.1:{port}"
    with running(args, env, f"{url}/ok", poll=0.2):
        return _run(_server(url, "router", {}, runs, concurrency))


def run(runs: int, concurrency: int) -> dict[str, Any]:
    port = free_port()
    backend_url = f"http://127.0.0.1:{port}/v1"
    with running(scripted_args(port, 20, 0, 0), {}, f"{backend_url}/models"):
        in_process = _run(_in_process(backend_url, runs))
        base = statistics.median(in_process) * 1000
        figures: dict[str, Any] = {
            "runs": runs,
            "concurrency": concurrency,
            "backend": "scripted (own process), answers at once, 20 tokens",
            "in_process_ms_p50": round(base, 2),
        }
        ours = _switchboard(backend_url, runs, concurrency)
        ours["added_ms_p50"] = round(ours["wait_ms_p50"] - base, 2)
        figures["switchboard"] = ours
        for name, poll in (("langgraph_dev", None), ("langgraph_dev_poll_5ms", 5)):
            peer = _peer(backend_url, runs, concurrency, poll)
            if isinstance(peer, dict):
                peer["added_ms_p50"] = round(peer["wait_ms_p50"] - base, 2)
                peer["our_added_latency_ratio"] = round(
                    ours["added_ms_p50"] / peer["added_ms_p50"], 2
                )
            figures[name] = peer
    print(figures)
    return figures
