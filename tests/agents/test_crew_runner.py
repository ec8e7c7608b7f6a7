"""The research crew's runner against scripted backends (real HTTP, CrewAI's real OpenAI
provider): concurrent crews never see each other's events on CrewAI's process-wide bus; the time
budget; a backend that never gives a final answer; a failing tool; nothing in the home folder."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.crew import CrewFailed, CrewRunner, CrewTimeout
from switchboard.events import Event
from switchboard.llm import LLMPool
from switchboard.settings import BackendConfig, CrewSettings, LLMSettings
from tests.backends import Reply, ScriptedBackend

ROOT = Path(__file__).resolve().parents[2]


class MarkedSearch:
    """A search tool whose results name the crew it belongs to (or that fails)."""

    name = "search_documents"
    description = "Search the user's documents."

    def __init__(self, marker: str, fail: bool = False) -> None:
        self.marker = marker
        self.fail = fail
        self.queries: list[str] = []

    async def __call__(self, query: str, k: int = 5) -> list[dict[str, Any]]:
        assert k == CrewSettings().search_results
        self.queries.append(query)
        if self.fail:
            raise ConnectionError(f"store down for {self.marker}")
        return [{"title": f"doc-{self.marker}", "section": None, "text": f"fact-{self.marker}"}]


def _pool(backend: ScriptedBackend) -> LLMPool:
    config = BackendConfig.model_validate(
        {"name": "b", "base_url": backend.url, "models": {"crew": "crew"}}
    )
    return LLMPool(LLMSettings(backends=[config], request_timeout=10), [config])


@pytest.fixture
def two_backends() -> Iterator[tuple[ScriptedBackend, ScriptedBackend]]:
    with ScriptedBackend() as a, ScriptedBackend() as b:
        yield a, b


def _script(backend: ScriptedBackend, marker: str) -> None:
    call = {"function": {"name": "search_documents", "arguments": json.dumps({"query": marker})}}
    backend.enqueue(Reply(tool_calls=[call], ttft=0.02), "crew")
    backend.enqueue(Reply(text=f"notes {marker}", gap=0.01), "crew")
    backend.enqueue(Reply(tokens=[f"draft-{marker}-{i} " for i in range(20)], gap=0.01), "crew")
    backend.enqueue(Reply(text="APPROVED", gap=0.01), "crew")


def _mentions(events: list[Event], marker: str) -> bool:
    return any(marker in json.dumps(e.data) for e in events)


async def test_two_crews_at_once_each_stream_only_their_own_events(
    two_backends: tuple[ScriptedBackend, ScriptedBackend], tmp_path: Path
) -> None:
    runs = []
    for backend, marker in zip(two_backends, ("AAA", "BBB"), strict=True):
        _script(backend, marker)
        runs.append((CrewRunner(_pool(backend), CrewSettings(), tmp_path), marker))
    streams: dict[str, list[Event]] = {"AAA": [], "BBB": []}
    results = await asyncio.gather(
        *(runner.run(f"report {m}", streams[m].append, MarkedSearch(m)) for runner, m in runs)
    )
    for (_, marker), result in zip(runs, results, strict=True):
        other = "BBB" if marker == "AAA" else "AAA"
        events = streams[marker]
        assert result.approved and result.report.startswith(f"draft-{marker}-0")
        assert not _mentions(events, other), f"{marker}'s stream holds {other}'s events"
        tokens = "".join(e.data["text"] for e in events if e.kind == "token")
        assert tokens == "".join(f"draft-{marker}-{i} " for i in range(20))
        tool_results = [e.data for e in events if e.data.get("type") == "tool_result"]
        assert len(tool_results) == 1 and f"fact-{marker}" in tool_results[0]["output"]
        assert [e.data["type"] for e in events if e.kind == "crew"].count("task_started") == 3
    for backend in two_backends:
        assert backend.request_count(model="crew") == 4


async def test_a_crew_past_its_time_budget_ends_with_a_timeout(tmp_path: Path) -> None:
    with ScriptedBackend() as backend:
        backend.set_default(Reply(text="notes", ttft=3), "crew")
        runner = CrewRunner(_pool(backend), CrewSettings(time_budget_s=0.5), tmp_path)
        with pytest.raises(CrewTimeout, match=r"within 0\.5 s"):
            await runner.run("report", lambda e: None, None)
        await asyncio.sleep(1)
        assert backend.request_count(model="crew") == 1  # nothing after the budget ran out


async def test_a_backend_that_never_answers_properly_fails_clearly(tmp_path: Path) -> None:
    with ScriptedBackend() as backend:
        call = {"function": {"name": "no_such_tool", "arguments": "{not json"}}
        backend.set_default(Reply(tool_calls=[call]), "crew")
        runner = CrewRunner(_pool(backend), CrewSettings(max_iterations=2), tmp_path)
        with pytest.raises(CrewFailed, match="the crew failed"):
            await runner.run("report", lambda e: None, MarkedSearch("X"))
        # Bounded: the agent's iterations, a forced final answer, and one retry of the task.
        assert backend.request_count(model="crew") <= 2 * (2 + 2)


async def test_a_failing_tool_is_reported_to_the_agent_and_the_crew_goes_on(
    tmp_path: Path,
) -> None:
    with ScriptedBackend() as backend:
        _script(backend, "CCC")
        events: list[Event] = []
        search = MarkedSearch("CCC", fail=True)
        runner = CrewRunner(_pool(backend), CrewSettings(), tmp_path)
        result = await runner.run("report", events.append, search)
        assert result.approved and search.queries == ["CCC"]
        seen_by_agent = [r for r in backend.requests if r.get("model") == "crew"][1]
        assert "Search failed: store down for CCC" in seen_by_agent["messages"][-1]["content"]
        results = [e.data for e in events if e.data.get("type") == "tool_result"]
        assert "Search failed" in results[0]["output"]


def test_crewai_writes_nothing_in_the_home_folder(tmp_path: Path) -> None:
    """A crew run in a fresh process whose HOME is an empty folder leaves it empty; CrewAI's
    files go under the data folder."""
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    script = f"""
import asyncio
from pathlib import Path
from agents.crew import CrewRunner
from switchboard.llm import LLMPool
from switchboard.settings import BackendConfig, CrewSettings, LLMSettings
from tests.backends import Reply, ScriptedBackend

async def main():
    with ScriptedBackend() as backend:
        backend.set_default(Reply(text="APPROVED"), "crew")
        config = BackendConfig.model_validate(
            {{"name": "b", "base_url": backend.url, "models": {{"crew": "crew"}}}})
        pool = LLMPool(LLMSettings(backends=[config]), [config])
        result = await CrewRunner(pool, CrewSettings(), Path({str(data)!r})).run(
            "report", lambda e: None, None)
        assert result.approved
        await pool.aclose()

asyncio.run(main())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "CREWAI_"))}
    env["HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert list(home.iterdir()) == []
    assert (data / "crewai").is_dir()
    assert b"telemetry" not in done.stdout.lower()
