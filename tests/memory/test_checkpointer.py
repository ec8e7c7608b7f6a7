"""The service's checkpoint save (`Checkpointer.aput`: one script) writes what upstream's
`AsyncRedisSaver.aput` (three round trips) writes: the same document, the same latest pointer,
the same expiry; and upstream reads it back. Checked against the real Redis with real
checkpoints, so an upgrade of langgraph-checkpoint-redis that changes its format fails here."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import (
    Checkpoint,
    CheckpointMetadata,
    create_checkpoint,
    empty_checkpoint,
)
from langgraph.checkpoint.redis.aio import AsyncRedisSaver
from redis.asyncio import Redis

from memory.threads import Checkpointer

TTL = {"default_ttl": 60, "refresh_on_read": True}
# Both saves of a pair happen within this many milliseconds (the document's own timestamp).
_SAME_MOMENT_MS = 5000


@pytest.fixture
async def savers(redis_url: str) -> AsyncIterator[tuple[AsyncRedisSaver, Checkpointer, Redis]]:
    client = Redis.from_url(redis_url)
    upstream = AsyncRedisSaver(redis_client=client, ttl=TTL)
    ours = Checkpointer(redis_client=client, ttl=TTL)
    await upstream.asetup()
    await ours.asetup()
    yield upstream, ours, client
    await client.aclose()


def _checkpoint(parent: Checkpoint | None) -> Checkpoint:
    """A checkpoint as a turn leaves it: messages of LangChain types and plain values."""
    base = parent or empty_checkpoint()
    checkpoint = create_checkpoint(base, None, 1 if parent is None else 2)
    checkpoint["channel_values"] = {
        "messages": [HumanMessage("Where is Kestrel?"), AIMessage("In Norway, by the fjord.")],
        "route": "direct",
        "answer": "In Norway, by the fjord.",
        "quality": 4.5,
        "sources": [{"id": "d1:0", "score": 0.91}],
    }
    checkpoint["channel_versions"] = {"messages": 2, "route": 1}
    return checkpoint


def _config(thread_id: str, parent_id: str | None = None) -> dict[str, Any]:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    if parent_id is not None:
        configurable["checkpoint_id"] = parent_id
    return {"configurable": configurable}


async def _stored(client: Redis, saver: AsyncRedisSaver, thread_id: str) -> dict[str, Any]:
    """What a save left in Redis for the thread: its latest pointer and the document it points
    to, with their expiry."""
    pointer_key = saver._make_redis_checkpoint_latest_key(thread_id, "")
    key = (await client.get(pointer_key)).decode()
    document = await client.json().get(key, "$")
    return {
        "key": key,
        "document": document[0],
        "key_ttl": await client.ttl(key),
        "pointer_ttl": await client.ttl(pointer_key),
    }


@pytest.mark.parametrize("with_parent", [False, True], ids=["first", "with-parent"])
async def test_one_script_save_writes_what_upstream_writes(
    savers: tuple[AsyncRedisSaver, Checkpointer, Redis], with_parent: bool
) -> None:
    upstream, ours, client = savers
    metadata: CheckpointMetadata = {"source": "loop", "step": 1, "parents": {}, "run_id": "r-1"}
    first = _checkpoint(None)
    checkpoint = _checkpoint(first) if with_parent else first
    parent_id = first["id"] if with_parent else None
    threads = {"upstream": f"up-{uuid.uuid4().hex}", "ours": f"ours-{uuid.uuid4().hex}"}

    configs = {
        "upstream": await upstream.aput(
            _config(threads["upstream"], parent_id), checkpoint, metadata, {}
        ),
        "ours": await ours.aput(_config(threads["ours"], parent_id), checkpoint, metadata, {}),
    }

    stored = {name: await _stored(client, upstream, threads[name]) for name in threads}
    # The same key shape and document, but for the thread's id and the moment of the save.
    assert stored["ours"]["key"] == stored["upstream"]["key"].replace(
        threads["upstream"], threads["ours"]
    )
    documents = {name: dict(stored[name]["document"]) for name in threads}
    moments = {name: documents[name].pop("checkpoint_ts") for name in threads}
    assert abs(moments["ours"] - moments["upstream"]) < _SAME_MOMENT_MS
    assert documents["ours"].pop("thread_id") == threads["ours"]
    assert documents["upstream"].pop("thread_id") == threads["upstream"]
    assert documents["ours"] == documents["upstream"]
    assert documents["ours"]["parent_checkpoint_id"] == (parent_id or "")
    assert documents["ours"]["source"] == "loop" and documents["ours"]["step"] == 1
    for name in threads:  # both keys expire with the thread (60 minutes)
        assert 3500 < stored[name]["key_ttl"] <= 3600
        assert 3500 < stored[name]["pointer_ttl"] <= 3600
    # The config each returns, for the loop's next save.
    assert configs["ours"]["configurable"] == {
        **configs["upstream"]["configurable"],
        "thread_id": threads["ours"],
    }

    # Upstream reads ours back as it reads its own: latest, by id, and through its search index.
    for reader in (upstream, ours):
        loaded = await reader.aget_tuple(_config(threads["ours"]))
        assert loaded is not None
        assert loaded.checkpoint["id"] == checkpoint["id"]
        assert loaded.checkpoint["channel_values"]["messages"] == [
            HumanMessage("Where is Kestrel?"),
            AIMessage("In Norway, by the fjord."),
        ]
        assert loaded.checkpoint["channel_values"]["sources"] == [{"id": "d1:0", "score": 0.91}]
        assert loaded.metadata["step"] == 1 and loaded.metadata["run_id"] == "r-1"
        expected_parent = parent_id if with_parent else None
        parent = (
            loaded.parent_config["configurable"]["checkpoint_id"] if loaded.parent_config else None
        )
        assert parent == expected_parent
    listed = [
        c.checkpoint["id"]
        async for c in upstream.alist(
            _config(threads["ours"]), filter={"source": "loop", "step": 1}
        )
    ]
    assert listed == [checkpoint["id"]]
