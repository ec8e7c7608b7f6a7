"""A worker process killed (SIGKILL) mid-run, with no other worker to take over until one is
started: the client sees the run still `running`, nothing is lost, and the new worker resumes the
run from its last checkpoint. Real processes (an API, `switchboard worker`) on one real Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.backends import Reply, ScriptedBackend
from tests.faults.conftest import FaultTable
from tests.faults.helpers import HEADERS, recovery_seconds, start_run, wait_for
from tests.service.cluster import cluster

LONG = " ".join(f"w{i}" for i in range(30))


def _run(url: str, thread: str, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/threads/{thread}/runs/{run_id}", headers=HEADERS, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_worker_killed_mid_run(
    backend: ScriptedBackend, redis_url: str, tmp_path: Path, fault_table: FaultTable
) -> None:
    """Shows: after the only worker is killed mid-answer the run is still `running` to the
    client (not lost, not failed); a worker started later reclaims it once its lease lapses and
    it ends `success` with the whole answer, once; the thread's earlier run and its messages
    are kept."""
    backend.set_default(Reply(text='{"route": "direct"}'), model="router")
    backend.set_default(Reply(text="First."), model="generator")
    with cluster(backend, redis_url, tmp_path) as nodes:
        url = nodes.api()
        worker = nodes.worker()
        thread = httpx.post(f"{url}/threads", json={}, headers=HEADERS).json()["thread_id"]
        first = start_run(url, thread, "One.")
        httpx.get(f"{url}/threads/{thread}/runs/{first}/join", headers=HEADERS, timeout=30)
        assert _run(url, thread, first)["status"] == "success"

        backend.set_default(Reply(text=LONG, gap=0.1), model="generator")
        second = start_run(url, thread, "Two.")
        wait_for(lambda: backend.active_streams == 1)
        nodes.kill(worker)
        wait_for(lambda: backend.active_streams == 0)
        assert _run(url, thread, second)["status"] == "running"

        nodes.worker()
        recovery = recovery_seconds(lambda: _run(url, thread, second)["status"] == "success")

        joined = httpx.get(f"{url}/threads/{thread}/runs/{second}/join", headers=HEADERS)
        assert joined.json()["answer"] == LONG
        runs = httpx.get(f"{url}/threads/{thread}/runs", headers=HEADERS).json()
        assert [(r["run_id"], r["status"]) for r in runs] == [
            (second, "success"),
            (first, "success"),
        ]
        state = httpx.get(f"{url}/threads/{thread}/state", headers=HEADERS).json()["values"]
        assert [m["content"] for m in state["messages"]] == ["One.", "First.", "Two.", LONG]
    fault_table.record(
        "worker killed (SIGKILL) mid-run",
        "run stays `running` (GET 200); ends `success` once a worker reclaims it",
        "none (run resumed from its checkpoint; earlier run and messages kept)",
        recovery,
    )
