"""Redis stopped and restarted under a running service (a real valkey on the same port and
append-only file): requests are refused with 503 while it is down, a run in flight survives,
threads and memories written before are kept, and the same process recovers by itself."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx

from memory.redis_server import EmbeddedRedis
from switchboard.processes import free_port
from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.faults.conftest import FaultTable
from tests.faults.helpers import (
    DIRECT,
    HEADERS,
    Servers,
    memories,
    messages,
    recovery_seconds,
    start_run,
    turn,
    turn_ends,
    wait_for,
)
from tests.service_runner import running_service

FACT = "Ada drinks her tea without milk."
LONG = " ".join(f"w{i}" for i in range(30))


def test_redis_stopped_and_restarted(
    tmp_path: Path, backend: ScriptedBackend, fault_table: FaultTable
) -> None:
    """Shows: while Redis is down a new turn and a run look-up are 503 `queue_unavailable` with
    `Retry-After` (never a 500 or a hang) and `/readyz` says Redis is down; a background run
    that was streaming tokens when Redis stopped still ends `success` with its whole answer;
    the thread and the user's memory written before are intact; and a new turn succeeds once
    Redis is back, without restarting the service."""
    servers = Servers()
    redis = EmbeddedRedis(tmp_path / "redis", free_port())
    servers.run(redis.start())
    settings = make_settings(backend_entry("only", backend), redis={"url": redis.url})
    backend.set_default(Reply(text='{"route": "direct"}'), model="router")
    backend.set_default(Reply(text='{"facts": []}'), model="extractor")
    try:
        with running_service(settings) as url:
            _redis_fault(url, backend, redis, servers, fault_table)
    finally:
        servers.run(redis.stop())
        servers.close()


def _redis_fault(
    url: str,
    backend: ScriptedBackend,
    redis: EmbeddedRedis,
    servers: Servers,
    fault_table: FaultTable,
) -> None:
    ids = uuid.uuid4().hex[:8]
    thread, user, other = f"t-{ids}", f"u-{ids}", f"bg-{ids}"
    backend.set_default(Reply(text="Noted."), model="generator")
    backend.enqueue(Reply(text=json.dumps({"facts": [FACT]})), model="extractor")
    status, events = turn(url, "No milk for me.", thread, user=user, **DIRECT)
    assert status == 200 and events[-1].kind == "end"
    wait_for(lambda: memories(url, user) == [FACT])

    backend.set_default(Reply(text=LONG, gap=0.1), model="generator")  # three seconds of tokens
    assert httpx.post(f"{url}/threads", json={"thread_id": other}, headers=HEADERS).is_success
    run_url = f"{url}/threads/{other}/runs/{start_run(url, other, 'Count.')}"
    wait_for(lambda: backend.active_streams == 1)

    servers.run(redis.stop())
    assert turn(url, "Hello?", thread, user=user, **DIRECT)[0] == 503
    refused = httpx.post(
        f"{url}/v1/chat/stream",
        json={"messages": [{"role": "user", "content": "Hello?"}], **DIRECT},
        headers=HEADERS,
    )
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "queue_unavailable"
    looked_up = httpx.get(run_url, headers=HEADERS, timeout=30)
    assert looked_up.status_code == 503, looked_up.text
    assert looked_up.json()["code"] == "queue_unavailable"
    ready = httpx.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 503 and ready.json()["redis"]["status"] == "down"

    servers.run(redis.start())  # the same port and append-only file
    backend.set_default(Reply(text="Back."), model="generator")
    recovery = recovery_seconds(lambda: turn_ends(url, "Probe.", f"probe-{ids}", **DIRECT))

    outcome = httpx.get(f"{run_url}/join", headers=HEADERS, timeout=30)
    assert outcome.status_code == 200 and outcome.json()["answer"] == LONG
    assert httpx.get(run_url, headers=HEADERS).json()["status"] == "success"
    assert messages(url, thread)[:2] == [("user", "No milk for me."), ("assistant", "Noted.")]
    assert memories(url, user) == [FACT]
    status, events = turn(url, "Still there?", thread, user=user, **DIRECT)
    assert status == 200 and events[-1].data["output"]["answer"] == "Back."
    fault_table.record(
        "Redis stopped, restarted",
        "503 `queue_unavailable` + `Retry-After: 1` on turns and run look-ups; "
        "`/readyz` 503 (redis down); the run in flight finishes",
        "none (thread, memory, in-flight run kept)",
        recovery,
    )
