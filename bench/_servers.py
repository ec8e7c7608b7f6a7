"""Server processes for the benchmarks: started, waited for, stopped."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def running(
    args: list[str], env: dict[str, str], ready_url: str, poll: float = 0.1
) -> Iterator[int]:
    """Run a server process until the block ends; yield its pid once `ready_url` answers 200
    (checked every `poll` seconds)."""
    process = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{args[:4]} exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args[:4]} not ready after 60 s")
            with contextlib.suppress(httpx.HTTPError):  # not listening yet
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            time.sleep(poll)
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)


def service_args(port: int) -> list[str]:
    """The service as the benchmarks run it: one uvicorn process (API and worker together, the
    embedded default), idle connections kept 60 s (a staggered client may wait that long on
    its warmed-up connection)."""
    return [
        sys.executable, "-m", "uvicorn", "--factory", "api.app:app_from_environment",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--no-access-log", "--timeout-keep-alive", "60",
    ]  # fmt: skip


def chat_env(backend_url: str, *, lean: bool = True) -> dict[str, str]:
    """Settings for a service whose every model role is served by `backend_url`, in a fresh data
    folder, with authentication off as the peers have none (rate limits are per API key, so off
    too). `lean`: the chat path alone (no knowledge graph, crew, conversation memory; embeddings
    from the backend); otherwise the embedded default (embedded Redis, local embedder, Qdrant
    local mode, the Neo4j harness when Java is present, CrewAI) with the scripted backend in
    place of the bundled model."""
    roles = ("router", "generator", "judge", "embeddings", "extractor", "crew")
    env = {
        "SWITCHBOARD_LLM__BACKENDS": json.dumps(
            [{"name": "s", "base_url": backend_url, "models": {r: r for r in roles}}]
        ),
        "SWITCHBOARD_SERVER__DATA_DIR": tempfile.mkdtemp(prefix="bench-service-"),
        "SWITCHBOARD_SERVER__LOG_LEVEL": "warning",
        "SWITCHBOARD_LOCAL__MODE": "off",
        "SWITCHBOARD_AUTH__MODE": "off",
    }
    if lean:
        env |= {
            "SWITCHBOARD_GRAPH__ENABLED": "false",
            "SWITCHBOARD_CREW__ENABLED": "false",
            "SWITCHBOARD_EMBEDDINGS__MODE": "backend",
            "SWITCHBOARD_MEMORY__ENABLED": "false",
        }
    return env


def scripted_args(port: int, tokens: int, ttft_ms: float, gap_ms: float) -> list[str]:
    """The scripted backend in its own process: every reply `tokens` pieces ("t0", " t1", ...),
    the first after `ttft_ms`, then one every `gap_ms`."""
    return [
        sys.executable, "-m", "tests.backends.scripted", "--port", str(port),
        "--text-tokens", str(tokens), "--ttft-ms", str(ttft_ms), "--gap-ms", str(gap_ms),
    ]  # fmt: skip
