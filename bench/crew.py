"""The crew's own cost and the service's start-up with CrewAI installed.

Crew overhead per kickoff: the research crew (researcher, writer, reviewer approving the first
draft: three model calls) against the scripted backend answering at once, minus three times the
time of one such call made directly with the OpenAI client CrewAI uses (the model time).

Start-up: the service process from launch to `/readyz` answering 200 (chat is served), with the
crew on and off (CrewAI is imported in a thread once the service is up, so it should not show),
the embedded Redis and local embeddings; then until `/readyz` shows the document store up, and,
with the embedded Neo4j on, the knowledge graph up (both open in the background after start-up);
and, for scale, `import crewai` alone in a fresh interpreter.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agents.crew import CREWAI_QUIET_ENV, CrewRunner
from bench._servers import running
from switchboard.llm import LLMPool
from switchboard.processes import free_port
from switchboard.settings import BackendConfig, CrewSettings, LLMSettings
from tests.backends import Reply, ScriptedBackend


def _direct_call_ms(url: str, calls: int) -> list[float]:
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key="x", max_retries=0)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        stream = client.chat.completions.create(
            model="crew",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for _chunk in stream:
            pass
        times.append((time.perf_counter() - started) * 1000)
    client.close()
    return times


async def crew_overhead(kickoffs: int) -> dict[str, Any]:
    with ScriptedBackend() as backend:
        backend.set_default(Reply(text="APPROVED"), "crew")
        config = BackendConfig.model_validate(
            {"name": "bench", "base_url": backend.url, "models": {"crew": "crew"}}
        )
        pool = LLMPool(LLMSettings(backends=[config]), [config])
        runner = CrewRunner(pool, CrewSettings(), Path(tempfile.mkdtemp(prefix="bench-crew-")))
        await runner.warm()
        for _ in range(3):  # warm CrewAI's caches and the connection
            await runner.run("warm up", lambda e: None, None)
        backend.reset()
        backend.set_default(Reply(text="APPROVED"), "crew")
        runs = []
        for index in range(kickoffs):
            started = time.perf_counter()
            result = await runner.run(f"report {index}", lambda e: None, None)
            runs.append((time.perf_counter() - started) * 1000)
            assert result.approved
        calls_per_kickoff = backend.request_count(model="crew") / kickoffs
        direct = await asyncio.to_thread(_direct_call_ms, backend.url, 60)
        await pool.aclose()
    model_ms = statistics.median(direct)
    run_ms = statistics.median(runs)
    return {
        "kickoffs": kickoffs,
        "model_calls_per_kickoff": calls_per_kickoff,
        "kickoff_ms_p50": round(run_ms, 1),
        "kickoff_ms_max": round(max(runs), 1),
        "direct_call_ms_p50": round(model_ms, 2),
        "overhead_ms_per_kickoff_p50": round(run_ms - calls_per_kickoff * model_ms, 1),
    }


@dataclass(frozen=True, slots=True)
class Start:
    ready_s: float  # launch to /readyz 200: chat is served
    settled_s: float  # launch to the document store (and graph, when on) up


def _start(crew: bool, graph: bool) -> Start:
    backend_port, port = free_port(), free_port()
    backend_args = [sys.executable, "-m", "tests.backends.scripted", "--port", str(backend_port)]
    backend_url = f"http://127.0.0.1:{backend_port}/v1"
    env = {
        "SWITCHBOARD_LLM__BACKENDS": json.dumps(
            [{"name": "s", "base_url": backend_url, "model": "s"}]
        ),
        "SWITCHBOARD_SERVER__DATA_DIR": tempfile.mkdtemp(prefix="bench-start-"),
        "SWITCHBOARD_GRAPH__ENABLED": "true" if graph else "false",
        "SWITCHBOARD_CREW__ENABLED": "true" if crew else "false",
    }
    args = [
        sys.executable, "-m", "uvicorn", "--factory", "api.app:app_from_environment",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    readyz = f"http://127.0.0.1:{port}/readyz"
    with running(backend_args, {}, f"{backend_url}/models"):
        started = time.perf_counter()
        with running(args, env, readyz, poll=0.02):
            ready = time.perf_counter() - started
            while True:
                body = httpx.get(readyz, timeout=10).json()
                states = (body["retrieval"]["status"], body["graph"]["status"])
                if "starting" not in states:
                    break
                time.sleep(0.02)
            if states != ("up", "up" if graph else "off"):
                raise RuntimeError(f"the service did not open its stores: {body}")
            return Start(ready, time.perf_counter() - started)


def _import_crewai_s() -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import crewai"],
        check=True,
        env={**os.environ, **CREWAI_QUIET_ENV},
    )
    return time.perf_counter() - started


def _p50(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def run(kickoffs: int, starts: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"overhead": asyncio.run(crew_overhead(kickoffs))}
    with_crew = [_start(crew=True, graph=False) for _ in range(starts)]
    without = [_start(crew=False, graph=False) for _ in range(starts)]
    with_graph = [_start(crew=True, graph=True) for _ in range(starts)]
    figures["startup"] = {
        "starts": starts,
        "ready_s_with_crew_p50": _p50([s.ready_s for s in with_crew]),
        "ready_s_with_crew_max": round(max(s.ready_s for s in with_crew), 2),
        "ready_s_without_crew_p50": _p50([s.ready_s for s in without]),
        "store_up_s_with_crew_p50": _p50([s.settled_s for s in with_crew]),
        "ready_s_with_crew_and_graph_p50": _p50([s.ready_s for s in with_graph]),
        "graph_up_s_with_crew_and_graph_p50": _p50([s.settled_s for s in with_graph]),
        "import_crewai_s": round(statistics.median(_import_crewai_s() for _ in range(3)), 2),
        "note": (
            "ready: launch to /readyz 200 (chat served); store/graph up: launch to /readyz "
            "showing the document store (and the embedded Neo4j) up, which open in the "
            "background; embedded Redis, local embeddings"
        ),
    }
    print(figures)
    return figures
