"""Forgetting a thread or a user, across every store, with a count of what was deleted.

A thread: its runs and their events, its checkpoints, the memories learnt in it, its owner
record. A user: each of their
threads as above, all their memories, and the documents they uploaded — chunks and vectors in
Qdrant, chunks, relations and now-orphaned entities in Neo4j (through the ingestion stages'
undo, the same path as deleting one document).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from langgraph.checkpoint.redis.aio import AsyncRedisSaver

from memory.ingest import Ingestor
from memory.long_term import LongTermMemory
from memory.store import ChunkStore
from memory.threads import REDIS_ERRORS, ThreadOwner, ThreadRegistry, count_checkpoints, unavailable
from switchboard.runs import RunStore


@dataclass(frozen=True, slots=True)
class Forgetter:
    checkpointer: AsyncRedisSaver
    threads: ThreadRegistry
    long_term: LongTermMemory | None
    store: ChunkStore | None
    ingestor: Ingestor | None
    runs: RunStore

    async def thread(self, owner: ThreadOwner) -> dict[str, int]:
        try:
            for run_id in await self.runs.active(owner.thread_id):
                await self.runs.request_cancel(run_id, "interrupt")
            runs = await self.runs.forget_thread(owner.thread_id)
            checkpoints = await count_checkpoints(self.checkpointer, owner.thread_id)
            await self.checkpointer.adelete_thread(owner.thread_id)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc
        memories = 0
        if self.long_term is not None and owner.user:
            memories = await self.long_term.forget(owner.tenant, owner.user, owner.thread_id)
        await self.threads.remove(owner)
        return {"threads": 1, "runs": runs, "checkpoints": checkpoints, "memories": memories}

    async def user(self, tenant: str, user: str) -> dict[str, int]:
        deleted: Counter[str] = Counter(threads=0, runs=0, checkpoints=0, memories=0, documents=0)
        for thread_id in await self.threads.threads_of(tenant, user):
            owner = await self.threads.get(thread_id)
            if owner is not None and owner.tenant == tenant:
                deleted.update(await self.thread(owner))
        if self.long_term is not None:
            deleted["memories"] += await self.long_term.forget(tenant, user)
        if self.store is not None and self.ingestor is not None:
            for record in await self.store.list_documents(tenant):
                if record.owner == user:
                    deleted.update(await self.ingestor.delete(tenant, record.id))
        return dict(deleted)
