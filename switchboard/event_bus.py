"""Moving runs' events through Redis without a round trip per event per run.

`EventWriter` (a worker's): runs append their events without waiting; one task writes whatever
has accumulated in one pipeline, then the next batch — under load many runs' tokens share a round
trip, alone a token goes out at once. Each event stays its own Stream entry (one SSE event).

`EventHub` (an API process's): one task follows every stream this process's clients are reading
with a single blocking `XREAD` over all their keys and hands the entries out; a new follower
wakes it through a Stream of its own, so it is read from at once. Clients therefore hold no Redis
connection each, however many streams are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from switchboard.runs import RunStore, StoredEvent, as_text

log = logging.getLogger(__name__)

# Below the Redis client's 5 s socket timeout.
_BLOCK_MS = 2000


def _position(entry_id: str) -> tuple[int, int]:
    """A Stream entry id ("<ms>-<seq>", or "0": before everything) as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class EventWriter:
    def __init__(self, store: RunStore) -> None:
        self._store = store
        self._pending: list[tuple[str, str, Any, bool]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._appended = 0  # events appended, ever
        self._written = 0  # of them, the ones a flush has finished with (written or lost)
        self._progress = asyncio.Condition()
        self._failures: dict[str, BaseException] = {}  # run id -> why some of its events were lost

    def append(self, run_id: str, name: str, data: Any, last: bool = False) -> None:
        self._pending.append((run_id, name, data, last))
        self._appended += 1
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="event writer")

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._store.append_many(batch)
            except Exception as exc:  # Redis down: those runs fail when they drain
                log.error("could not write %d run events: %s", len(batch), exc)
                for run_id, *_ in batch:
                    self._failures[run_id] = exc
            async with self._progress:
                self._written += len(batch)
                self._progress.notify_all()

    async def drain(self, run_id: str) -> None:
        """Wait until every event appended so far is written (other runs' later events are not
        waited for); raise if some of this run's were lost."""
        target = self._appended
        async with self._progress:
            await self._progress.wait_for(lambda: self._written >= target)
        failure = self._failures.pop(run_id, None)
        if failure is not None:
            raise failure


@dataclass(slots=True, eq=False)
class _Follower:
    cursor: str
    queue: asyncio.Queue[StoredEvent | None] = field(default_factory=asyncio.Queue)


class EventHub:
    def __init__(self, redis: Redis, store: RunStore) -> None:
        self._redis = redis
        self._store = store
        self._wake = f"switchboard:hub:{uuid.uuid4().hex}"
        self._wake_cursor = "0"
        self._followers: dict[str, set[_Follower]] = {}  # run id -> its followers here
        self._task: asyncio.Task[None] | None = None
        self._checked = 0.0  # when followed runs were last checked for existence

    async def follow(self, run_id: str, after: str = "0") -> AsyncIterator[StoredEvent]:
        """The run's events after the entry id `after`, up to and including its last; ends
        early if the run (or its events) expired."""
        follower = _Follower(after)
        self._followers.setdefault(run_id, set()).add(follower)
        try:
            await self._wake_up()
            while True:
                event = await follower.queue.get()
                if event is None:
                    return
                yield event
                if event.last:
                    return
        finally:
            followers = self._followers.get(run_id)
            if followers is not None:
                followers.discard(follower)
                if not followers:
                    del self._followers[run_id]

    async def _wake_up(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._read(), name="event hub")
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self._wake, {"w": "1"}, maxlen=16, approximate=True)
            pipe.expire(self._wake, 3600)
            await pipe.execute()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.delete(self._wake)

    async def _read(self) -> None:
        while True:
            try:
                await self._read_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event hub: reading run events failed; retrying")
                await asyncio.sleep(0.5)

    async def _read_once(self) -> None:
        streams: dict[Any, Any] = {self._wake: self._wake_cursor}
        for run_id, followers in self._followers.items():
            if followers:
                earliest = min((f.cursor for f in followers), key=_position)
                streams[self._store.events_key(run_id)] = earliest
        reply: Any = await self._redis.xread(streams, count=512, block=_BLOCK_MS)
        if time.monotonic() - self._checked > _BLOCK_MS / 1000:
            self._checked = time.monotonic()
            await self._end_expired()  # also under load: a deleted run has no closing event
        if not reply:
            return
        for key, entries in reply:
            name = as_text(key)
            if name == self._wake:
                self._wake_cursor = as_text(entries[-1][0])
                continue
            run_id = self._store.run_of_events_key(name)
            for entry_id, fields in entries:
                event = _stored(as_text(entry_id), fields)
                for follower in list(self._followers.get(run_id, ())):
                    if _position(event.id) > _position(follower.cursor):
                        follower.cursor = event.id
                        follower.queue.put_nowait(event)

    async def _end_expired(self) -> None:
        """End the followers of runs that no longer exist (expired, deleted, rolled back)."""
        run_ids = list(self._followers)
        if not run_ids:
            return
        exists = await self._store.runs_exist(run_ids)
        for run_id, alive in zip(run_ids, exists, strict=True):
            if not alive:
                for follower in self._followers.get(run_id, ()):
                    follower.queue.put_nowait(None)


def _stored(entry_id: str, fields: dict[Any, Any]) -> StoredEvent:
    decoded = {as_text(k): as_text(v) for k, v in fields.items()}
    return StoredEvent(entry_id, decoded["e"], json.loads(decoded["d"]), "last" in decoded)
