"""The side-by-side peer run of ../shared/PEERS.md: Switchboard and `langgraph dev` serving the
same router graph (bench/peer/), against one scripted backend in its own process that streams a
12-word reply one word per SSE chunk, at once.

Each server is driven over raw HTTP with the same client code: a stateless `POST /runs/stream`
(Agent Protocol) with the route pinned to `direct` and the judge off; for Switchboard also its
OpenAI stream. Per server and stream mode:
- time to the first token event with 1 client (sequential requests) and with 10 (each client's
  requests back to back), minus the backend's own at the same concurrency: the added TTFT;
- CPU per request: the server's process tree's CPU time over the sequential requests;
- requests per second with 10 clients;
- SSE events and bytes per reply, and bytes per token event.

The peer is `langgraph dev` with its idle queue poll cut from 0.5 s to 5 ms (PEERS.md's
"patched" row, the one the goals compare with; stock it starts every run up to a second late,
which bench/runs.py shows), one job at a time (its default). Its router graph has no LangChain
chat model, so it streams tokens as `custom` events only; Switchboard is measured in `custom` and
in `messages-tuple`, the mode whose event size the goal bounds. Without the peer's virtual
environment (bench/peer/setup.sh) only Switchboard's figures are taken.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench._procs import tree_cpu_seconds
from bench._servers import ROOT, chat_env, running, scripted_args, service_args
from bench.concurrency import percentile
from switchboard.processes import free_port

PEER_VENV = ROOT / ".venv-peer"
MESSAGE: dict[str, Any] = {"messages": [{"role": "user", "content": "Say twelve words."}]}
TOKENS = 12


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    base_url: str
    path: str
    body: dict[str, Any]
    pid: int | None


@dataclass(frozen=True, slots=True)
class Reply:
    ttft: float
    total: float
    events: int
    bytes: int
    token_events: int
    token_bytes: int
    error: str | None


def _is_token(event: str, data: Any) -> bool:
    if event == "messages":  # messages-tuple: [AIMessageChunk, metadata]
        return isinstance(data, list) and bool(data and data[0].get("content"))
    if event == "custom" and isinstance(data, dict):
        return data.get("event") == "token" or data.get("kind") == "token"
    if isinstance(data, dict) and "choices" in data:  # an OpenAI chunk
        choices = data["choices"]
        return bool(choices and choices[0].get("delta", {}).get("content"))
    return False


async def _one(client: httpx.AsyncClient, target: Target) -> Reply:
    started = time.perf_counter()
    ttft = 0.0
    events = size = tokens = token_size = 0
    try:
        async with client.stream("POST", target.base_url + target.path, json=target.body) as r:
            if r.status_code != 200:
                await r.aread()
                return Reply(0, 0, 0, 0, 0, 0, f"HTTP {r.status_code}")
            buffer = b""
            async for piece in r.aiter_bytes():
                buffer += piece.replace(b"\r\n", b"\n")
                while b"\n\n" in buffer:
                    raw, buffer = buffer.split(b"\n\n", 1)
                    events += 1
                    size += len(raw) + 2
                    name, data = "message", b""
                    for line in raw.split(b"\n"):
                        if line.startswith(b"event:"):
                            name = line[6:].strip().decode()
                        elif line.startswith(b"data:"):
                            data += line[5:].strip()
                    if not data or data == b"[DONE]":
                        continue
                    if _is_token(name, json.loads(data)):
                        tokens += 1
                        token_size += len(raw) + 2
                        if tokens == 1:
                            ttft = time.perf_counter() - started
    except httpx.HTTPError as exc:
        return Reply(0, 0, 0, 0, 0, 0, repr(exc))
    error = None if tokens == TOKENS else f"{tokens} token events"
    return Reply(ttft, time.perf_counter() - started, events, size, tokens, token_size, error)


async def _measure(target: Target, requests: int, clients: int) -> dict[str, Any]:
    headers = {"X-Switchboard-Tenant": "bench"}
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as client:
        for _ in range(5):
            await _one(client, target)  # warm up
        cpu_before = tree_cpu_seconds(target.pid) if target.pid else 0.0
        sequential = [await _one(client, target) for _ in range(requests)]
        cpu = tree_cpu_seconds(target.pid) - cpu_before if target.pid else None
        per_client = max(1, 2 * requests // clients)

        async def one_client() -> list[Reply]:
            return [await _one(client, target) for _ in range(per_client)]

        started = time.perf_counter()
        parallel = [
            r for rs in await asyncio.gather(*(one_client() for _ in range(clients))) for r in rs
        ]
        wall = time.perf_counter() - started
    good1 = [r for r in sequential if r.error is None]
    good10 = [r for r in parallel if r.error is None]
    tokens = sum(r.token_events for r in good1)
    return {
        "requests": requests,
        "errors": len(sequential) - len(good1) + len(parallel) - len(good10),
        "error_kinds": sorted({r.error for r in sequential + parallel if r.error}),
        "ttft_ms_p50_1_client": round(percentile([r.ttft for r in good1], 0.5) * 1000, 2),
        "ttft_ms_p50_10_clients": round(percentile([r.ttft for r in good10], 0.5) * 1000, 2),
        "total_ms_p50_1_client": round(percentile([r.total for r in good1], 0.5) * 1000, 2),
        "cpu_ms_per_request": round(cpu * 1000 / requests, 2) if cpu is not None else None,
        "requests_per_s_10_clients": round(len(good10) / wall, 1),
        "events_per_reply": statistics.median(r.events for r in good1) if good1 else None,
        "bytes_per_reply": statistics.median(r.bytes for r in good1) if good1 else None,
        "bytes_per_token_event": round(sum(r.token_bytes for r in good1) / tokens, 1)
        if tokens
        else None,
    }


def _run_body(assistant: str, modes: list[str], context: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"assistant_id": assistant, "input": MESSAGE, "stream_mode": modes}
    return body | ({"context": context} if context else {})


def run(requests: int = 100) -> dict[str, Any]:
    """Measure the backend, Switchboard and the patched peer; return the figures."""
    backend_port, service_port, peer_port = free_port(), free_port(), free_port()
    backend_url = f"http://127.0.0.1:{backend_port}"
    pinned = {"route": "direct", "quality_check": False}
    chat = {
        "model": "switchboard",
        "messages": MESSAGE["messages"],
        "stream": True,
        **pinned,
    }
    figures: dict[str, Any] = {
        "benchmark": "peers",
        "config": {
            "requests": requests,
            "backend": "scripted, own process, 12 one-word chunks at once",
            "peer": "langgraph dev (langgraph-api, in-memory runtime), idle poll 5 ms, 1 job",
        },
    }
    results: dict[str, Any] = {}
    with running(scripted_args(backend_port, TOKENS, 0, 0), {}, f"{backend_url}/v1/models"):
        direct = Target(
            "backend",
            backend_url,
            "/v1/chat/completions",
            {"model": "generator", "messages": MESSAGE["messages"], "stream": True},
            None,
        )
        results["backend"] = asyncio.run(_measure(direct, requests, 10))
        url = f"http://127.0.0.1:{service_port}"
        env = chat_env(f"{backend_url}/v1")
        with running(service_args(service_port), env, f"{url}/readyz") as pid:
            for name, path, body in (
                ("switchboard_openai", "/v1/chat/completions", chat),
                (
                    "switchboard_custom",
                    "/runs/stream",
                    _run_body("switchboard", ["custom"], pinned),
                ),
                (
                    "switchboard_messages_tuple",
                    "/runs/stream",
                    _run_body("switchboard", ["messages-tuple"], pinned),
                ),
            ):
                results[name] = asyncio.run(
                    _measure(Target(name, url, path, body, pid), requests, 10)
                )
                print(name, results[name], flush=True)
        if (PEER_VENV / "bin" / "langgraph").exists():
            peer_env = {
                "PEER_BACKEND_URL": f"{backend_url}/v1",
                "PEER_PORT": str(peer_port),
                "PEER_IDLE_POLL_MS": "5",
            }
            peer_url = f"http://127.0.0.1:{peer_port}"
            args = ["bash", str(ROOT / "bench" / "peer" / "start.sh")]
            with running(args, peer_env, f"{peer_url}/ok", poll=0.2) as pid:
                target = Target(
                    "peer", peer_url, "/runs/stream", _run_body("router", ["custom"], {}), pid
                )
                results["langgraph_dev_poll_5ms_custom"] = asyncio.run(
                    _measure(target, requests, 10)
                )
                print("peer", results["langgraph_dev_poll_5ms_custom"], flush=True)
        else:
            results["langgraph_dev_poll_5ms_custom"] = (
                "not measured: run bench/peer/setup.sh once to install langgraph-cli[inmem]"
            )
    base = results["backend"]
    for value in results.values():
        if isinstance(value, dict) and value is not base:
            for clients in ("1_client", "10_clients"):
                value[f"added_ttft_ms_p50_{clients}"] = round(
                    value[f"ttft_ms_p50_{clients}"] - base[f"ttft_ms_p50_{clients}"], 2
                )
    peer = results["langgraph_dev_poll_5ms_custom"]
    if isinstance(peer, dict):
        for name in ("switchboard_openai", "switchboard_custom", "switchboard_messages_tuple"):
            results[name]["throughput_vs_peer"] = round(
                results[name]["requests_per_s_10_clients"] / peer["requests_per_s_10_clients"], 2
            )
    figures["servers"] = results
    return figures
