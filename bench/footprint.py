"""Cold start and resident memory of the embedded default.

The service as `switchboard serve` runs it by default — the embedded Redis (valkey with RedisJSON
and RediSearch, a child process), the local embedder, Qdrant's local mode, the Neo4j harness (a
child JVM) when Java is present, CrewAI — except the bundled model: every model role is served
by the scripted backend (in this process, answering at once), so no model load is timed.

Cold start, per launch (each with a fresh data folder; the OS's file cache is warm, as after any
earlier start): process launch to `/readyz` 200 (chat is served), to the first chat turn
answered (sent as soon as `/readyz` says 200), and to every store up (the document store, and
the knowledge graph when Java is present, open in the background).

Memory (RSS, from /proc), on the last launch: idle once every store is up and the service has
sat still for a few seconds; loaded, the peak while `load_streams` concurrent streams run for
`load_s` seconds; and idle again afterwards. The service process and its children (valkey,
Neo4j's JVM) are reported apart.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._client import Connection
from bench._procs import Footprint, descendants, footprint
from bench._servers import chat_env, running, service_args
from switchboard.processes import free_port
from tests.backends import Reply, ScriptedBackend
from tests.backends.scripted import bench_tokens

TURN: dict[str, Any] = {
    "model": "switchboard",
    "messages": [{"role": "user", "content": "Hello?"}],
    "route": "direct",
    "quality_check": False,
}


@dataclass(frozen=True, slots=True)
class Launch:
    ready_s: float  # launch to /readyz 200
    first_turn_s: float  # launch to the first chat turn answered
    stores_up_s: float | None  # launch to every store up (None: not waited for)
    readyz: dict[str, Any]


def _wait_stores(url: str, started: float, timeout: float = 180) -> tuple[float, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = httpx.get(f"{url}/readyz", timeout=10).json()
        statuses = {
            name: part.get("status")
            for name, part in body.items()
            if isinstance(part, dict) and "status" in part
        }
        if "starting" not in statuses.values() or time.monotonic() > deadline:
            return time.perf_counter() - started, statuses
        time.sleep(0.05)


async def _load(port: int, streams: int, seconds: float, pid: int) -> dict[str, Any]:
    """`streams` connections streaming back to back for `seconds`; RSS sampled meanwhile."""
    body = {**TURN, "stream": True}
    connections = [Connection("127.0.0.1", port) for _ in range(streams)]
    deadline = time.perf_counter() + seconds
    done = 0
    errors = 0

    async def client(connection: Connection) -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            sample = await connection.stream("/v1/chat/completions", body)
            done += 1
            errors += sample.error is not None

    peak = footprint(pid)
    tasks = [asyncio.create_task(client(c)) for c in connections]
    while not all(t.done() for t in tasks):
        now = footprint(pid)
        if now.total_mib > peak.total_mib:
            peak = now
        await asyncio.sleep(0.25)
    await asyncio.gather(*tasks)
    await asyncio.gather(*(c.close() for c in connections))
    return {"peak": peak, "streams_done": done, "errors": errors}


def _launch(
    backend: ScriptedBackend, settle: bool, load: tuple[int, float] | None
) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    children: list[int] = []
    started = time.perf_counter()
    try:
        with running(
            service_args(port), chat_env(backend.url, lean=False), f"{url}/readyz", 0.02
        ) as pid:
            ready = time.perf_counter() - started
            answer = httpx.post(
                f"{url}/v1/chat/completions",
                json=TURN,
                headers={"X-Switchboard-Tenant": "bench"},
                timeout=60,
            )
            first_turn = time.perf_counter() - started
            answer.raise_for_status()
            figures: dict[str, Any] = {"ready_s": ready, "first_turn_s": first_turn}
            children += descendants(pid)
            if not settle:
                return figures | {"stores_up_s": None, "readyz": {}}
            stores_up, statuses = _wait_stores(url, started)
            figures |= {"stores_up_s": stores_up, "readyz": statuses}
            children += descendants(pid)
            time.sleep(5)  # let start-up work (imports in threads, JIT, first GC) finish
            figures["idle"] = footprint(pid)
            if load is not None:
                streams, seconds = load
                # The load: 32 tokens, the first after 50 ms, then one every 25 ms (the sweep's).
                tokens = bench_tokens(32)
                backend.set_default(
                    Reply(text="".join(tokens), tokens=tokens, ttft=0.05, gap=0.025)
                )
                figures["load"] = asyncio.run(_load(port, streams, seconds, pid))
                time.sleep(5)
                figures["after_load"] = footprint(pid)
            children += descendants(pid)
            return figures
    finally:
        _wait_gone(children)


def _wait_gone(pids: list[int], timeout: float = 30) -> None:
    """Wait until the service's children are gone (a JVM still starting may outlive the
    service by seconds), so that the next launch does not share the cores with them."""
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)


def _mib(f: Footprint) -> dict[str, Any]:
    return asdict(f)


def run(launches: int = 3, load_streams: int = 100, load_s: float = 20) -> dict[str, Any]:
    """Launch the service `launches` times and measure; return the figures."""
    results: list[dict[str, Any]] = []
    with ScriptedBackend() as backend:
        tokens = bench_tokens(12)
        for index in range(launches):
            last = index == launches - 1
            backend.set_default(Reply(text="".join(tokens), tokens=tokens))  # at once
            figures = _launch(backend, settle=last, load=(load_streams, load_s) if last else None)
            results.append(figures)
            print(
                f"launch {index + 1}: ready {figures['ready_s']:.2f} s, first turn "
                f"{figures['first_turn_s']:.2f} s, stores up {figures['stores_up_s']}",
                flush=True,
            )
    final = results[-1]
    load = final.get("load", {})
    return {
        "benchmark": "footprint",
        "config": {
            "launches": launches,
            "load_streams": load_streams,
            "load_s": load_s,
            "service": "embedded default (embedded Redis, local embedder, Qdrant local mode, "
            "Neo4j harness when Java is present, CrewAI), the scripted backend in place of the "
            "bundled model, auth off",
        },
        "cold_start": {
            "ready_s_p50": round(statistics.median(r["ready_s"] for r in results), 2),
            "ready_s_max": round(max(r["ready_s"] for r in results), 2),
            "first_turn_s_p50": round(statistics.median(r["first_turn_s"] for r in results), 2),
            "first_turn_s_max": round(max(r["first_turn_s"] for r in results), 2),
            "stores_up_s": round(final["stores_up_s"], 2),
            "stores": final["readyz"],
            "launches": [
                {k: round(v, 3) for k, v in r.items() if isinstance(v, float)} for r in results
            ],
        },
        "rss": {
            "idle": _mib(final["idle"]),
            "loaded_peak": _mib(load["peak"]) if load else None,
            "load_streams_done": load.get("streams_done"),
            "load_errors": load.get("errors"),
            "after_load": _mib(final["after_load"]) if "after_load" in final else None,
        },
    }
