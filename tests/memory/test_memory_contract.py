"""The memory contracts, run against the Redis implementations and LangGraph's in-memory ones.

Whatever the service keeps a thread or a user's facts in must pass the same tests: the real
Redis (valkey + RedisJSON + RediSearch) with the service's classes (`Checkpointer`,
`FixedAsyncRedisStore` under `LongTermMemory`), and LangGraph's `InMemorySaver` and
`InMemoryStore`, the embedded alternatives. Facts are embedded by the scripted backend's
embeddings, as the service embeds them."""

from __future__ import annotations

import operator
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.redis.jsonplus_redis import JsonPlusRedisSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from langgraph.types import Send
from redis.asyncio import Redis

from memory.long_term import FixedAsyncRedisStore, LongTermMemory
from memory.threads import Checkpointer, FastRedisSerializer
from tests.memory.conftest import Parts

KINDS = ["redis", "in-memory"]


@pytest.fixture(params=KINDS)
async def saver(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Any]:
    if request.param == "in-memory":
        yield InMemorySaver()
        return
    client = Redis.from_url(redis_url)
    checkpointer = Checkpointer(redis_client=client)
    await checkpointer.asetup()
    yield checkpointer
    await client.aclose()


@pytest.fixture(params=KINDS)
async def memory(
    request: pytest.FixtureRequest, redis_url: str, parts: Parts
) -> AsyncIterator[LongTermMemory]:
    index: Any = {"dims": parts.embedder.dimension, "embed": parts.embedder.embed}
    index["fields"] = ["text"]
    store: BaseStore
    if request.param == "in-memory":
        yield LongTermMemory(InMemoryStore(index=index), vector_search=True)
        return
    client = Redis.from_url(redis_url)
    store = FixedAsyncRedisStore(redis_client=client, index=index)
    await store.setup()
    yield LongTermMemory(store, vector_search=True)
    await client.aclose()


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- checkpointer -------------------------------------------------------------------------


class TurnState(TypedDict):
    messages: Annotated[list[Any], operator.add]
    extra: Any


# Values of every kind a thread's state may hold. Not tuples: the Redis saver stores JSON, which
# has none, and gives them back as lists (upstream's behaviour; the router's state holds none).
EXTRA: dict[str, Any] = {
    "plain": {"a": [1, 2.5, "x", None, True], "nested": {"deep": ["y"]}},
    "set": {"a", "b"},
    "bytes": b"\x00\xffraw",
    "message": HumanMessage(content="hello", id="m1"),
    "send": Send("node", {"arg": [1, 2]}),
    "unicode": "naïve — 東京 ☃",
    "empty": {"list": [], "dict": {}},
}


def _turn_graph(saver: BaseCheckpointSaver[Any]) -> Any:
    def answer(state: TurnState) -> dict[str, Any]:
        said = state["messages"][-1]["content"]
        return {"messages": [{"role": "assistant", "content": f"echo {said}"}]}

    graph = StateGraph(TurnState)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    return graph.compile(checkpointer=saver)


async def test_a_thread_continues_and_keeps_every_kind_of_value(saver: Any) -> None:
    graph = _turn_graph(saver)
    config: Any = {"configurable": {"thread_id": _name("thread")}}
    for text in ("one", "two"):
        await graph.ainvoke(
            {"messages": [{"role": "user", "content": text}], "extra": EXTRA}, config
        )
    state = await graph.aget_state(config)
    assert [m["content"] for m in state.values["messages"]] == [
        "one",
        "echo one",
        "two",
        "echo two",
    ]
    assert state.values["extra"] == EXTRA
    assert type(state.values["extra"]["message"]) is HumanMessage
    history = [s async for s in graph.aget_state_history(config)]
    assert len(history) >= 4  # input and answer checkpoints of each turn, newest first
    assert (
        history[0].config["configurable"]["checkpoint_id"]
        == (state.config["configurable"]["checkpoint_id"])
    )


def test_the_fast_serializer_writes_what_upstream_writes() -> None:
    # The fast path for plain JSON values must not change a byte of what is stored.
    values = {**EXTRA, "tuple": (1, "two", (3,)), "frozen": frozenset({"f"}), "deep": [[[EXTRA]]]}
    checkpoint = {"v": 4, "id": "c1", "channel_values": values, "channel_versions": {"a": "1"}}
    ours, theirs = FastRedisSerializer(), JsonPlusRedisSerializer()
    for value in (checkpoint, *values.values()):
        assert ours.dumps_typed(value) == theirs.dumps_typed(value)


async def test_deleting_a_thread_leaves_the_others(saver: Any) -> None:
    graph = _turn_graph(saver)
    doomed: Any = {"configurable": {"thread_id": _name("doomed")}}
    kept: Any = {"configurable": {"thread_id": _name("kept")}}
    for config in (doomed, kept):
        await graph.ainvoke({"messages": [{"role": "user", "content": "hi"}], "extra": 1}, config)
    await saver.adelete_thread(doomed["configurable"]["thread_id"])
    assert await saver.aget_tuple(doomed) is None
    assert (await graph.aget_state(doomed)).values == {}
    assert len((await graph.aget_state(kept)).values["messages"]) == 2


async def test_an_unknown_thread_has_no_checkpoint(saver: Any) -> None:
    assert await saver.aget_tuple({"configurable": {"thread_id": _name("never")}}) is None


# --- long-term memory ---------------------------------------------------------------------


async def test_recall_finds_the_closest_fact_first(memory: LongTermMemory) -> None:
    tenant, user = _name("t"), _name("u")
    await memory.remember(
        tenant,
        user,
        "th-1",
        ["The user maintains the billing service", "The user's dog is called Biscuit"],
    )
    found = await memory.recall(tenant, user, "what pet dog does the user have?", 2)
    assert found[0].text == "The user's dog is called Biscuit"
    assert all(m.score is not None for m in found)


async def test_a_fact_is_stored_once_and_read_back_by_id(memory: LongTermMemory) -> None:
    tenant, user = _name("t"), _name("u")
    first = await memory.remember(tenant, user, "th-1", ["Prefers answers in French"])
    again = await memory.remember(tenant, user, "th-2", ["prefers answers in french"])
    assert len(first) == 1 and again == []
    stored = await memory.get(tenant, user, first[0].id)
    assert stored is not None and stored.text == "Prefers answers in French"
    assert stored.thread_id == "th-1"
    assert [m.text for m in await memory.list(tenant, user)] == ["Prefers answers in French"]


async def test_facts_never_cross_users_or_tenants(memory: LongTermMemory) -> None:
    # u1 and u10 share a text prefix (Redis matches namespaces by prefix); tenants with a period
    # are labels LangGraph would otherwise refuse.
    tenant, other_tenant = f"acme.{_name('t')}", _name("t")
    await memory.remember(tenant, "u1", None, ["u1 likes tea"])
    await memory.remember(tenant, "u10", None, ["u10 likes coffee"])
    await memory.remember(other_tenant, "u1", None, ["other tenant's u1 likes water"])
    assert [m.text for m in await memory.recall(tenant, "u1", "likes", 10)] == ["u1 likes tea"]
    assert [m.text for m in await memory.list(tenant, "u10")] == ["u10 likes coffee"]
    assert [m.text for m in await memory.list(other_tenant, "u1")] == [
        "other tenant's u1 likes water"
    ]
    fact = (await memory.list(tenant, "u10"))[0]
    assert await memory.get(tenant, "u1", fact.id) is None


async def test_forget_a_thread_then_the_user(memory: LongTermMemory) -> None:
    tenant, user = _name("t"), _name("u")
    await memory.remember(tenant, user, "th-1", ["fact from thread one", "another from one"])
    await memory.remember(tenant, user, "th-2", ["fact from thread two"])
    assert await memory.forget(tenant, user, thread_id="th-1") == 2
    assert [m.text for m in await memory.list(tenant, user)] == ["fact from thread two"]
    assert await memory.forget(tenant, user) == 1
    assert await memory.list(tenant, user) == []
    assert await memory.recall(tenant, user, "fact", 5) == []
