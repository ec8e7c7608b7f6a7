"""Runs through the durable queue, beside the same graph served by `langgraph dev`.

Both servers run the router workflow (route pinned to `direct`, judge off) against the scripted
backend answering at once (in a process of its own), and are driven by the same `langgraph-sdk`
client code:
- latency: `runs.wait` on a new thread, one at a time, p50 and p95, minus the p50 of the same
  graph executed in this process (`graph.ainvoke`, no server, no checkpointer) — the server's added
  latency: for Switchboard the API, the Redis queue, the worker, the event Stream and the Redis
  checkpointer; for `langgraph dev` its API, its in-memory queue and checkpointer. The baseline
  runs as the servers run the graph: on uvloop, its backend in another process (with the backend
  in this process's thread and the default loop it took 8.4 ms instead of 5.4, which the
  servers' figures then seemed to save);
- time to first token of `runs.stream` (custom mode), one at a time, p50;
- throughput: `runs.wait` calls at a fixed concurrency, each on its own thread, runs per second.

All servers are up at once, and the latency runs take turns: a round is one in-process run and
one `runs.wait` on Switchboard and on the patched peer, the first of each round rotating (the
same for first tokens; stock `langgraph dev`, which idles up to a second per run, apart). This
machine's speed drifts by a third or more from one minute to the next (another tenant's load):
measured one server after the other, the ratio of two added latencies moved with it (0.49x to
0.91x for the same code within twenty minutes); taking turns, every figure sees the same machine.
Throughput is measured one server at a time (the others idle).

The peer is measured twice: stock, and with its idle queue poll cut from 0.5 s to 5 ms (stock
`langgraph dev` starts a run up to a second late; ../shared/PEERS.md asks for both rows). It needs
its own virtual environment (`bench/peer/setup.sh`, once); without it only Switchboard's figures
are taken and the comparison says so.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

import uvloop
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from bench._servers import ROOT, chat_env, running, scripted_args, service_args
from graphs.router import RouterContext, build_router_graph
from switchboard.llm import LLMPool
from switchboard.processes import free_port
from switchboard.settings import BackendConfig, LLMSettings, QualitySettings, RouterSettings

T = TypeVar("T")
PEER_VENV = ROOT / ".venv-peer"
NOT_MEASURED = "not measured: run bench/peer/setup.sh once to install langgraph-cli[inmem]"
ANSWER = " ".join(f"t{i}" for i in range(20))  # 20 tokens
MESSAGE: dict[str, Any] = {"messages": [{"role": "user", "content": "Say twenty tokens."}]}


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """On uvloop, as both servers run (uvicorn picks it when installed)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


class _InProcess:
    """The graph alone, executed here: what a run costs without any server."""

    def __init__(self, url: str) -> None:
        backend = BackendConfig.model_validate({"name": "s", "base_url": url, "model": "generator"})
        self.llm = LLMPool(LLMSettings(backends=[backend]), [backend])
        self._context = RouterContext(
            llm=self.llm,
            router=RouterSettings(),
            quality=QualitySettings(enabled=False),
            max_tokens=256,
            route="direct",
        )
        self._graph = build_router_graph()

    async def wait(self) -> float:
        started = time.perf_counter()
        result = await self._graph.ainvoke(MESSAGE, context=self._context)  # type: ignore[call-overload]
        elapsed = time.perf_counter() - started
        assert result["answer"] == ANSWER
        return elapsed


@dataclass(frozen=True)
class _Server:
    name: str
    client: LangGraphClient
    assistant: str
    context: dict[str, Any]

    async def wait(self) -> float:
        thread = await self.client.threads.create()
        started = time.perf_counter()
        final = await self.client.runs.wait(
            thread["thread_id"], self.assistant, input=MESSAGE, context=self.context
        )
        elapsed = time.perf_counter() - started
        assert isinstance(final, dict) and final.get("answer") == ANSWER, final
        return elapsed

    async def first_token(self) -> float:
        """Until the first token of a streamed run; the rest is read too (untimed), so that
        the run does not overlap the next measurement."""
        thread = await self.client.threads.create()
        started = time.perf_counter()
        first = None
        async for part in self.client.runs.stream(
            thread["thread_id"], self.assistant, input=MESSAGE, context=self.context,
            stream_mode="custom",
        ):  # fmt: skip
            if first is None and part.event == "custom" and _is_token(part.data):
                first = time.perf_counter() - started
        assert first is not None, f"{self.name}: no token"
        return first

    async def throughput(self, runs: int, concurrency: int) -> float:
        threads = [(await self.client.threads.create())["thread_id"] for _ in range(runs)]
        gate = asyncio.Semaphore(concurrency)

        async def one(thread_id: str) -> None:
            async with gate:
                final = await self.client.runs.wait(
                    thread_id, self.assistant, input=MESSAGE, context=self.context
                )
                assert isinstance(final, dict) and final.get("answer") == ANSWER, final

        started = time.perf_counter()
        await asyncio.gather(*(one(t) for t in threads))
        return round(runs / (time.perf_counter() - started), 1)


async def _interleaved(
    calls: dict[str, Callable[[], Awaitable[float]]], runs: int
) -> dict[str, list[float]]:
    """Each call `runs` times (after 3 of warm-up), taking turns, the first of each round
    rotating: a machine that slows down or speeds up meanwhile does so for all of them."""
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(runs + 3):
        turn = round_ % len(names)
        for name in names[turn:] + names[:turn]:
            elapsed = await calls[name]()
            if round_ >= 3:
                times[name].append(elapsed)
    return times


async def _measure(
    backend_url: str, servers: dict[str, tuple[str, str, dict[str, Any]]], runs: int,
    concurrency: int,
) -> tuple[float, dict[str, dict[str, Any]]]:  # fmt: skip
    """The in-process baseline's p50, and each server's figures."""
    alone = _InProcess(backend_url)
    targets = {
        name: _Server(name, get_client(url=url, headers={"X-Switchboard-Tenant": "bench"}), a, c)
        for name, (url, a, c) in servers.items()
    }
    # Stock `langgraph dev` leaves its machine idle for up to a second before each run: taking
    # turns with it, whichever comes next would start on a machine gone idle. Measured apart.
    together = {n: t for n, t in targets.items() if n != "langgraph_dev"}
    apart = {n: t for n, t in targets.items() if n not in together}
    try:
        waits = await _interleaved(
            {"in_process": alone.wait, **{n: t.wait for n, t in together.items()}}, runs
        )
        firsts = await _interleaved({n: t.first_token for n, t in together.items()}, runs)
        for name, target in apart.items():
            waits |= await _interleaved({name: target.wait}, runs)
            firsts |= await _interleaved({name: target.first_token}, runs)
        figures = {
            name: {
                "wait_ms_p50": _ms(waits[name], 0.5),
                "wait_ms_p95": _ms(waits[name], 0.95),
                "first_token_ms_p50": _ms(firsts[name], 0.5),
                # One server at a time: the others idle meanwhile.
                "throughput_runs_per_s": await target.throughput(runs, concurrency),
            }
            for name, target in targets.items()
        }
    finally:
        await alone.llm.aclose()
        for target in targets.values():
            await target.client.aclose()
    return statistics.median(waits["in_process"]) * 1000, figures


def _is_token(data: Any) -> bool:
    """A token in either server's custom stream: Switchboard wraps its events
    ({"event": "token", ...}); the peer's graph forwards the router's `Event` as written."""
    if isinstance(data, dict):
        return data.get("event") == "token" or data.get("kind") == "token"
    return False


def _switchboard_args(backend_url: str) -> tuple[list[str], dict[str, str], str]:
    port = free_port()
    return service_args(port), chat_env(backend_url), f"http://127.0.0.1:{port}"


def _peer_args(backend_url: str, idle_poll_ms: int | None) -> tuple[list[str], dict[str, str], str]:
    """`langgraph dev` with its defaults (one job at a time; its in-memory queue), serving the
    router graph through `bench/peer/graph.py` (`bench/peer/README.md`); with `idle_poll_ms`,
    its idle queue poll cut from 0.5 s to that (the "patched" row of ../shared/PEERS.md)."""
    port = free_port()
    env = {"PEER_BACKEND_URL": backend_url, "PEER_PORT": str(port)}
    if idle_poll_ms is not None:
        env["PEER_IDLE_POLL_MS"] = str(idle_poll_ms)
    return ["bash", str(ROOT / "bench" / "peer" / "start.sh")], env, f"http://127.0.0.1:{port}"


def run(runs: int, concurrency: int) -> dict[str, Any]:
    port = free_port()
    backend_url = f"http://127.0.0.1:{port}/v1"
    peers = (PEER_VENV / "bin" / "langgraph").exists()
    with ExitStack() as stack:
        stack.enter_context(running(scripted_args(port, 20, 0, 0), {}, f"{backend_url}/models"))
        args, env, url = _switchboard_args(backend_url)
        stack.enter_context(running(args, env, f"{url}/readyz"))
        servers = {"switchboard": (url, "switchboard", {"route": "direct", "quality_check": False})}
        if peers:
            for name, poll in (("langgraph_dev", None), ("langgraph_dev_poll_5ms", 5)):
                args, env, url = _peer_args(backend_url, poll)
                stack.enter_context(running(args, env, f"{url}/ok", poll=0.2))
                servers[name] = (url, "router", {})
        base, measured = _run(_measure(backend_url, servers, runs, concurrency))
    figures: dict[str, Any] = {
        "runs": runs,
        "concurrency": concurrency,
        "backend": "scripted (own process), answers at once, 20 tokens",
        "method": "all servers up at once; latency runs of Switchboard and the patched peer "
        "interleaved with the in-process baseline, one of each in turn (stock langgraph dev "
        "apart); throughput one server at a time",
        "in_process_ms_p50": round(base, 2),
    }
    ours = measured["switchboard"]
    ours["added_ms_p50"] = round(ours["wait_ms_p50"] - base, 2)
    figures["switchboard"] = ours
    for name in ("langgraph_dev", "langgraph_dev_poll_5ms"):
        peer = measured.get(name)
        if peer is None:
            figures[name] = NOT_MEASURED
            continue
        peer["added_ms_p50"] = round(peer["wait_ms_p50"] - base, 2)
        peer["our_added_latency_ratio"] = round(ours["added_ms_p50"] / peer["added_ms_p50"], 2)
        figures[name] = peer
    print(figures)
    return figures
