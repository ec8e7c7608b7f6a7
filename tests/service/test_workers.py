"""Runs survive their worker: a worker killed mid-run (SIGKILL) loses nothing — another worker
reclaims the run and resumes it from its last checkpoint — and any API process serves any run.
Real processes (`uvicorn` API, `switchboard worker`) against one real Redis."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from langgraph_sdk import get_client

from switchboard.runs import RunRecord
from tests.backends import Reply, ScriptedBackend
from tests.service.cluster import Cluster, cluster

CONTEXT = {"quality_check": False}
TENANT = {"X-Switchboard-Tenant": "workers"}


def _input(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


@pytest.fixture
def nodes(backend: ScriptedBackend, redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    backend.set_default(Reply(text='{"route": "direct"}'), model="router")
    with cluster(backend, redis_url, tmp_path) as running:
        yield running


def _record(redis_url: str, run_id: str) -> RunRecord:
    with redis.Redis.from_url(redis_url) as client:
        raw = client.get(f"switchboard:run:{run_id}")
    assert raw is not None
    return RunRecord.from_json(raw)


async def test_a_killed_worker_s_run_is_resumed_by_another(
    nodes: Cluster, backend: ScriptedBackend, redis_url: str
) -> None:
    text = " ".join(f"w{i}" for i in range(40))
    backend.set_default(Reply(text=text, gap=0.05), model="generator")  # 2 s of tokens
    url = nodes.api()
    workers = {w.pid: w for w in (nodes.worker(), nodes.worker())}
    client = get_client(url=url, headers=TENANT)
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "switchboard", input=_input("Go."), context=CONTEXT)
    while len([r for r in backend.requests if r.get("model") == "generator"]) < 1:
        await asyncio.sleep(0.05)
    holder = nodes.holder(run["run_id"])
    assert holder in workers
    nodes.kill(workers.pop(holder))
    final = await asyncio.wait_for(client.runs.join(thread_id, run["run_id"]), timeout=60)
    assert final["answer"] == text
    record = _record(redis_url, run["run_id"])
    assert record.status == "success" and record.attempt == 2
    assert nodes.holder(run["run_id"]) is None  # released by the worker that finished it
    models = [r.get("model") for r in backend.requests]
    # Resumed from its checkpoint after `classify`: the router was asked once, generation twice.
    assert models.count("router") == 1 and models.count("generator") == 2
    assert [r["run_id"] for r in await client.runs.list(thread_id)] == [run["run_id"]]
    await client.aclose()


async def test_fifty_runs_with_random_worker_kills_are_all_done(
    nodes: Cluster, backend: ScriptedBackend, redis_url: str
) -> None:
    """Two workers taking two runs at a time; one of them, at random, is killed every second
    (and replaced) while runs remain: every run still ends, once, with its whole answer."""
    backend.set_default(Reply(text="a b c d e f g h", gap=0.1), model="generator")
    url = nodes.api()
    alive = [nodes.worker(concurrency=2), nodes.worker(concurrency=2)]
    client = get_client(url=url, headers=TENANT)
    runs = []
    for _ in range(50):
        thread_id = (await client.threads.create())["thread_id"]
        run = await client.runs.create(
            thread_id, "switchboard", input=_input("Letters."), context=CONTEXT
        )
        runs.append((thread_id, run["run_id"]))
    chance = random.Random(7)
    kills = 0

    async def statuses() -> list[str]:
        return [(await client.runs.get(t, r))["status"] for t, r in runs]

    for _ in range(300):
        if all(s == "success" for s in await statuses()):
            break
        if kills < 5:
            victim = alive.pop(chance.randrange(len(alive)))
            await asyncio.to_thread(nodes.kill, victim)
            kills += 1
            alive.append(await asyncio.to_thread(nodes.worker, 2))
        await asyncio.sleep(1)
    assert kills >= 3  # the runs outlasted several kills
    assert await statuses() == ["success"] * 50
    for thread_id, run_id in runs:
        assert [r["run_id"] for r in await client.runs.list(thread_id)] == [run_id]
        assert (await client.runs.join(thread_id, run_id))["answer"] == "a b c d e f g h"
    with redis.Redis.from_url(redis_url) as raw:
        assert raw.xlen("switchboard:runs:queue") == 0  # every run acknowledged
    await client.aclose()


async def test_a_run_started_through_one_api_is_joined_through_another(
    nodes: Cluster, backend: ScriptedBackend
) -> None:
    text = " ".join(f"t{i}" for i in range(20))
    backend.set_default(Reply(text=text, gap=0.03), model="generator")
    first, second = nodes.api(), nodes.api()
    nodes.worker()
    nodes.worker()
    one = get_client(url=first, headers=TENANT)
    other = get_client(url=second, headers=TENANT)
    thread_id = (await one.threads.create(metadata={"n": uuid.uuid4().hex}))["thread_id"]
    run = await one.runs.create(
        thread_id,
        "switchboard",
        input=_input("Twenty."),
        context=CONTEXT,
        stream_mode=["messages-tuple"],
    )
    parts = [p async for p in other.runs.join_stream(thread_id, run["run_id"])]
    assert "".join(p.data[0]["content"] for p in parts if p.event == "messages") == text
    assert (await other.runs.get(thread_id, run["run_id"]))["status"] == "success"
    assert (await one.threads.get_state(thread_id))["values"]["answer"] == text
    await one.aclose()
    await other.aclose()
