"""Chat latency with tracing off, on (Langfuse answering), and pointed at a Langfuse that refuses
connections or never answers: sequential chat turns (direct route, judge on, so each turn makes
two model calls and a score), `stream: false`, against the scripted backend answering at once.
Each variant is a fresh service process; the "answering" Langfuse is the tests' loopback
receiver (`tests/langfuse_sink.py`), which decodes what the SDK sends as a server would.
"""

from __future__ import annotations

import json
import socket
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

import httpx

from bench._servers import running
from switchboard.processes import free_port
from tests.backends import Reply, ScriptedBackend
from tests.langfuse_sink import LangfuseSink


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def _turns(url: str, turns: int) -> dict[str, Any]:
    times = []
    errors = 0
    with httpx.Client(timeout=30) as client:
        for n in range(turns + 5):
            body = {"model": "switchboard", "messages": [{"role": "user", "content": f"Q{n}?"}]}
            started = time.perf_counter()
            response = client.post(f"{url}/v1/chat/completions", json=body)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                errors += 1
            if n >= 5:
                times.append(elapsed)
    return {
        "p50_ms": _ms(times, 0.5),
        "p95_ms": _ms(times, 0.95),
        "mean_ms": round(statistics.mean(times) * 1000, 2),
        "errors": errors,
    }


def _service(backend_url: str, tracing: dict[str, Any] | None, turns: int) -> dict[str, Any]:
    port = free_port()
    entry = {
        "name": "s",
        "base_url": backend_url,
        "models": {r: r for r in ("router", "generator", "judge", "embeddings", "extractor")},
    }
    env = {
        "SWITCHBOARD_LLM__BACKENDS": json.dumps([entry]),
        "SWITCHBOARD_SERVER__DATA_DIR": tempfile.mkdtemp(prefix="bench-tracing-"),
        "SWITCHBOARD_GRAPH__ENABLED": "false",
        "SWITCHBOARD_CREW__ENABLED": "false",
        "SWITCHBOARD_EMBEDDINGS__MODE": "backend",
        "SWITCHBOARD_MEMORY__ENABLED": "false",
        # As the peers: no authentication (issue 8 adds it; a cached key costs no round trip).
        "SWITCHBOARD_AUTH__MODE": "off",
        "SWITCHBOARD_SERVER__LOG_LEVEL": "error",
    }
    if tracing is not None:
        env |= {f"SWITCHBOARD_TRACING__{k.upper()}": str(v) for k, v in tracing.items()}
    args = [
        sys.executable, "-m", "uvicorn", "--factory", "api.app:app_from_environment",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "error",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with running(args, env, f"{url}/readyz"):
        return _turns(url, turns)


def run(turns: int) -> dict[str, Any]:
    keys = {"secret_key": "sk-bench", "export_timeout_s": 3, "flush_interval_s": 1.0}
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1024)  # accepts (the kernel does), never answers
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused = probe.getsockname()[1]
    sink = LangfuseSink()
    variants: dict[str, dict[str, Any] | None] = {
        "off": None,
        "on, Langfuse answering": {"base_url": sink.url},
        "on, connection refused": {"base_url": f"http://127.0.0.1:{refused}"},
        "on, Langfuse never answers": {"base_url": f"http://127.0.0.1:{silent.getsockname()[1]}"},
    }
    figures: dict[str, Any] = {"turns": turns, "backend": "scripted, answers at once"}
    try:
        with ScriptedBackend() as backend:
            backend.set_default(Reply(text='{"route": "direct"}'), model="router")
            backend.set_default(Reply(text='{"score": 4}'), model="judge")
            backend.set_default(
                Reply(text="A short answer of eight words here."), model="generator"
            )
            for name, tracing in variants.items():
                settings = (
                    None
                    if tracing is None
                    else {**keys, **tracing, "public_key": f"pk-{uuid.uuid4().hex}"}
                )
                figures[name] = _service(backend.url, settings, turns)
                print(name, figures[name])
        figures["spans_received"] = len(sink.spans)
    finally:
        sink.close()
        silent.close()
    return figures
