"""A run's checkpoint collected as Redis commands (`deferred_checkpoints`) and written later is the
checkpoint upstream's `aput` writes: same document, same pointer, same expiry; the thread goes on
from it."""

from __future__ import annotations

import operator
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from langgraph.graph import END, START, StateGraph
from redis.asyncio import Redis
from typing_extensions import TypedDict

from memory.threads import Checkpointer, deferred_checkpoints


class State(TypedDict):
    notes: Annotated[list[str], operator.add]


def _graph(saver: Checkpointer) -> Any:
    graph = StateGraph(State)
    graph.add_node("note", lambda state: {"notes": [f"seen {len(state['notes'])}"]})
    graph.add_edge(START, "note")
    graph.add_edge("note", END)
    return graph.compile(checkpointer=saver)


@pytest.fixture
async def saver(redis_url: str) -> AsyncIterator[Checkpointer]:
    redis = Redis.from_url(redis_url)
    checkpointer = Checkpointer(redis_client=redis, ttl={"default_ttl": 60})
    await checkpointer.asetup()
    yield checkpointer
    await redis.aclose()


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


async def _document(redis: Redis, thread_id: str) -> tuple[dict[str, Any], int]:
    """The thread's latest checkpoint document and its expiry, through the latest pointer."""
    pointers = [k async for k in redis.scan_iter(match=f"*{thread_id}*") if b"latest" in k]
    (pointer,) = pointers
    key = await redis.get(pointer)
    document: dict[str, Any] = await redis.json().get(key)
    return document, await redis.ttl(key)


async def test_a_deferred_checkpoint_is_the_one_upstream_writes(saver: Checkpointer) -> None:
    graph = _graph(saver)
    direct, deferred = str(uuid.uuid4()), str(uuid.uuid4())
    await graph.ainvoke({"notes": ["hi"]}, _config(direct), durability="exit")
    with deferred_checkpoints() as commands:
        await graph.ainvoke({"notes": ["hi"]}, _config(deferred), durability="exit")
    assert commands  # collected, not written
    assert (await graph.aget_state(_config(deferred))).values == {}
    await saver.write_deferred(commands)

    written, expiry = await _document(saver._redis, deferred)
    upstream, upstream_expiry = await _document(saver._redis, direct)
    assert set(written) == set(upstream)
    for field in ("thread_id", "checkpoint_id", "run_id", "checkpoint_ts"):
        written.pop(field), upstream.pop(field)
    for document in (written, upstream):
        checkpoint = document["checkpoint"]
        checkpoint.pop("id"), checkpoint.pop("ts")
        # Versions end in a random fraction: compare which channels have them.
        checkpoint["channel_versions"] = sorted(checkpoint["channel_versions"])
        checkpoint["versions_seen"] = {k: sorted(v) for k, v in checkpoint["versions_seen"].items()}
    assert written == upstream
    assert 0 < expiry <= 3600 and abs(expiry - upstream_expiry) <= 2

    state = await graph.aget_state(_config(deferred))
    assert state.values == {"notes": ["hi", "seen 1"]} and not state.next
    # The thread goes on from it.
    await graph.ainvoke({"notes": ["again"]}, _config(deferred), durability="exit")
    again = await graph.aget_state(_config(deferred))
    assert again.values["notes"] == ["hi", "seen 1", "again", "seen 3"]
    history = [s async for s in graph.aget_state_history(_config(deferred))]
    assert len(history) == 2
