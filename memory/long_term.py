"""Long-term memory: short facts about a user, remembered across threads, on a LangGraph store.

The store is LangGraph's `AsyncRedisStore` in the service (vector search over the facts with the
service's embedder; TTL per fact) and can be any `BaseStore` (LangGraph's `InMemoryStore` runs the
same contract tests). Facts live in the namespace `("memories", tenant, user, "facts")`: the
trailing label matters, because the Redis store matches namespaces by text prefix, so without it
user `u1`'s search would also find user `u10`'s facts. Results are checked against the exact
namespace as well.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langgraph.store.base import BaseStore, GetOp, Item, PutOp, SearchItem
from langgraph.store.redis.aio import AsyncRedisStore
from langgraph.store.redis.base import _namespace_to_text
from redisvl.query.filter import Tag

log = logging.getLogger(__name__)

_ROOT = "memories"
_LEAF = "facts"
_LIST_PAGE = 500


class FixedAsyncRedisStore(AsyncRedisStore):
    """`AsyncRedisStore` with `get` working for nested namespaces.

    Upstream (langgraph-checkpoint-redis 0.5.2) stores the namespace as one escaped token
    (`memories\\.t\\.u`) but looks it up for `get` with a phrase query, `@prefix:("…")`, which
    never matches a namespace of more than one label, so `get` returns None while `search` finds
    the item. This uses the token query that its own delete path uses.
    """

    def _get_batch_GET_ops_queries(
        self, get_ops: Sequence[tuple[int, GetOp]]
    ) -> list[tuple[str, Sequence[Any], tuple[str, ...], list[Any]]]:
        groups: dict[tuple[str, ...], list[tuple[int, str]]] = defaultdict(list)
        for idx, op in get_ops:
            groups[op.namespace].append((idx, op.key))
        queries: list[tuple[str, Sequence[Any], tuple[str, ...], list[Any]]] = []
        for namespace, items in groups.items():
            keys = [key for _, key in items]
            query = f"(@prefix:{_namespace_to_text(namespace)} {Tag('key') == keys})"
            queries.append((query, [], namespace, list(items)))
        return queries


@dataclass(frozen=True, slots=True)
class Memory:
    id: str
    text: str
    thread_id: str | None
    created_at: str
    score: float | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "thread_id": self.thread_id,
            "created_at": self.created_at,
            "score": self.score,
        }


def _label(value: str) -> str:
    # LangGraph namespace labels may not contain periods; tenants may.
    return value.replace("%", "%25").replace(".", "%2E")


def namespace(tenant: str, user: str) -> tuple[str, ...]:
    return (_ROOT, _label(tenant), _label(user), _LEAF)


def _to_memory(item: Item) -> Memory:
    value = item.value
    return Memory(
        id=item.key,
        text=str(value.get("text", "")),
        thread_id=value.get("thread_id"),
        created_at=item.created_at.isoformat(),
        score=item.score if isinstance(item, SearchItem) else None,
    )


class LongTermMemory:
    """A user's facts: recalled by similarity before a turn, added after it, forgotten on
    request. `vector_search` is False when the store has no embedding index (then `recall`
    returns the newest facts)."""

    def __init__(self, store: BaseStore, *, vector_search: bool) -> None:
        self._store = store
        self.vector_search = vector_search

    async def recall(self, tenant: str, user: str, query: str, limit: int) -> list[Memory]:
        ns = namespace(tenant, user)
        items = await self._store.asearch(
            ns, query=query if self.vector_search else None, limit=limit
        )
        return [_to_memory(item) for item in items if tuple(item.namespace) == ns]

    async def remember(
        self, tenant: str, user: str, thread_id: str | None, texts: Sequence[str]
    ) -> list[Memory]:
        """Store each new fact (a text already remembered for the user is not stored twice)."""
        ns = namespace(tenant, user)
        known = {m.text.casefold() for m in await self.list(tenant, user)}
        ops: list[PutOp] = []
        for text in texts:
            if text.casefold() in known:
                continue
            known.add(text.casefold())
            value = {"text": text, "thread_id": thread_id}
            ops.append(PutOp(ns, uuid.uuid4().hex, value, index=["text"]))
        if ops:
            await self._store.abatch(ops)
        return [
            Memory(op.key, str(op.value["text"]), thread_id, "")
            for op in ops
            if op.value is not None
        ]

    async def list(self, tenant: str, user: str) -> list[Memory]:
        """Every fact remembered for the user, newest first."""
        ns = namespace(tenant, user)
        found: list[Memory] = []
        offset = 0
        while True:
            page = await self._store.asearch(ns, limit=_LIST_PAGE, offset=offset)
            found.extend(_to_memory(item) for item in page if tuple(item.namespace) == ns)
            if len(page) < _LIST_PAGE:
                break
            offset += _LIST_PAGE
        return sorted(found, key=lambda m: m.created_at, reverse=True)

    async def get(self, tenant: str, user: str, memory_id: str) -> Memory | None:
        item = await self._store.aget(namespace(tenant, user), memory_id)
        return _to_memory(item) if item is not None else None

    async def forget(self, tenant: str, user: str, thread_id: str | None = None) -> int:
        """Delete the user's facts (only those learnt in `thread_id` when given); the count."""
        doomed = [
            m
            for m in await self.list(tenant, user)
            if thread_id is None or m.thread_id == thread_id
        ]
        ns = namespace(tenant, user)
        if doomed:
            await self._store.abatch([PutOp(ns, m.id, None) for m in doomed])
        return len(doomed)
