"""SIGTERM drains a service (as Kubernetes stops a pod): it takes nothing new, its open stream
runs to its end, and the runs it held but had not started go back to the queue at once, where
another worker takes them. Real processes against one real Redis."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from tests.backends import Reply, ScriptedBackend
from tests.service.cluster import cluster

HEADERS = {"X-Switchboard-Tenant": "drain"}
WORDS = [f"w{i}" for i in range(25)]


def _run(text: str) -> dict[str, Any]:
    return {
        "assistant_id": "switchboard",
        "input": {"messages": [{"role": "user", "content": text}]},
        "context": {"quality_check": False},
        "stream_mode": ["messages-tuple"],
    }


def _status(url: str, thread_id: str, run_id: str) -> str:
    response = httpx.get(f"{url}/threads/{thread_id}/runs/{run_id}", headers=HEADERS)
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


def test_sigterm_lets_the_open_stream_finish_and_hands_queued_runs_to_another_worker(
    backend: ScriptedBackend, redis_url: str, tmp_path: Path
) -> None:
    backend.set_default(Reply(text='{"route": "direct"}'), model="router")
    backend.set_default(Reply(text=" ".join(WORDS), gap=0.1), model="generator")  # 2.5 s
    # A lease of a minute: a run left behind would wait that long to be reclaimed, so runs done
    # well within it were handed back.
    env = {"SWITCHBOARD_RUNTIME__LEASE_MS": "60000"}
    with cluster(backend, redis_url, tmp_path, env) as nodes:
        serving, process = nodes.serve(concurrency=4)
        other_api = nodes.api()
        nodes.worker()
        thread_id = httpx.post(f"{serving}/threads", json={}, headers=HEADERS).json()["thread_id"]
        with httpx.stream(
            "POST",
            f"{serving}/threads/{thread_id}/runs/stream",
            json=_run("Stream to me."),
            headers=HEADERS,
            timeout=30,
        ) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            seen: list[str] = []
            while not any(line.startswith("event: messages") for line in seen):
                seen.append(next(lines))  # the run executes: its first token is out
            # Two more runs on the same thread: this process's worker takes them at once
            # (`submit`), and they wait for the first to end.
            queued = [
                httpx.post(
                    f"{serving}/threads/{thread_id}/runs", json=_run(f"Then {n}."), headers=HEADERS
                ).json()["run_id"]
                for n in (2, 3)
            ]
            process.send_signal(signal.SIGTERM)
            seen += list(lines)
        events = [line[7:] for line in seen if line.startswith("event: ")]
        assert events[-1] == "end"
        text = "".join(
            json.loads(line[6:])[0]["content"]
            for kind, line in zip(events, [x for x in seen if x.startswith("data: ")], strict=True)
            if kind == "messages"
        )
        assert text == " ".join(WORDS)  # the whole answer, after the SIGTERM
        process.wait(timeout=30)  # it stopped once its stream ended
        log = nodes.log(process)
        for run_id in queued:
            assert f"handed run {run_id} back" in log

        deadline = time.monotonic() + 30  # half the lease
        while any(_status(other_api, thread_id, r) != "success" for r in queued):
            assert time.monotonic() < deadline, [_status(other_api, thread_id, r) for r in queued]
            time.sleep(0.1)
        runs = httpx.get(f"{other_api}/threads/{thread_id}/runs", headers=HEADERS).json()
        assert len(runs) == 3 and {r["status"] for r in runs} == {"success"}
        # Closed to new connections from the moment it got the signal.
        try:
            httpx.get(f"{serving}/healthz", timeout=2)
            raise AssertionError("the drained service still answers")
        except httpx.ConnectError:
            pass
        assert process.returncode in (0, -signal.SIGTERM)
