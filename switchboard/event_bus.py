"""Moving runs' events through Redis without a round trip per event per run.

`EventWriter` (a worker's): runs append their events without waiting; one task writes whatever
has accumulated in one pipeline, then the next batch — under load many runs' tokens share a round
trip, alone a token goes out at once. Each event stays its own Stream entry (one SSE event).

Inside an API process (the default: `switchboard serve` runs a worker), a run's events are also
handed straight to that process's followers of the run, as they are made: no wait for Redis, no
read back and no decoding. The hub keeps the run's latest events while it executes here, so a
follower that joins late or resumes after `Last-Event-ID` is served from them too, unless it
is further behind (then it catches up from Redis first). A follower goes back to reading Redis
if the run leaves this process (its worker lost it or stopped). Both paths carry the Stream's
entry ids, and a follower takes an event only once.

`EventHub` (an API process's): one task follows every stream this process's clients are reading
with a single blocking `XREAD` over all their keys and hands the entries out; a new follower
wakes it through a Stream of its own, so it is read from at once. Clients therefore hold no Redis
connection each, however many streams are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from switchboard import metrics
from switchboard.runs import RunStore, StoredEvent, as_text, encode

log = logging.getLogger(__name__)

# Below the Redis client's 5 s socket timeout.
_BLOCK_MS = 2000
# Events of each run executing here kept in memory, for followers that join late or fall behind
# (older ones are read from Redis).
_RECENT = 1024


def _position(entry_id: str) -> tuple[int, int]:
    """A Stream entry id ("<ms>-<seq>", or "0": before everything) as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class EventWriter:
    """A worker's events, written in batches.

    Alone (a `switchboard worker` process), each batch goes out as soon as the last one is
    written. With a hub (the worker runs inside an API process), a run that starts here fresh
    gets its entry ids from the writer (`<start ms>-<n>`: its Stream is empty, so they are valid
    and in order); each event is handed to the hub at once with its id and written `delay_ms`
    later with the others of that moment — many tokens in one round trip, none waiting for it.
    """

    def __init__(self, store: RunStore, hub: EventHub | None = None, delay_ms: int = 0) -> None:
        self._store = store
        self._hub = hub
        self._delay_s = delay_ms / 1000 if hub is not None else 0.0
        self._pending: list[_Pending] = []
        # When the oldest event now pending was appended (monotonic): a batch is written
        # `delay_ms` after it, not after an earlier event that a run's end took out meanwhile
        # (`take_rest`) — that would send the next run's first events early, a round trip
        # its end would have carried.
        self._oldest = 0.0
        self._ids: dict[str, list[int]] = {}  # run -> [start ms, last sequence number]
        self._hurry = asyncio.Event()  # write now: a drain, or an event without an id waits
        self._flusher: asyncio.Task[None] | None = None
        self._in_flight: dict[str, int] = {}  # run -> its events in the batch being written
        self._progress = asyncio.Condition()
        self._failures: dict[str, BaseException] = {}  # run id -> why some of its events were lost

    def open(self, run_id: str, fresh: bool) -> None:
        """The run executes here from now on; `fresh`: none of its events was written before."""
        if self._hub is None:
            return
        if fresh:
            self._ids[run_id] = [int(time.time() * 1000), 0]
        self._hub.produce(run_id, fresh)

    def close(self, run_id: str) -> None:
        """The run no longer executes here (ended, lost or stopped)."""
        self._ids.pop(run_id, None)
        self._failures.pop(run_id, None)  # not held against a later attempt here
        if self._hub is not None:
            self._hub.release(run_id)

    def append(self, run_id: str, name: str, data: Any, last: bool = False) -> None:
        encoded = encode(data)
        counter = self._ids.get(run_id)
        entry_id = None
        if counter is not None and self._hub is not None:
            counter[1] += 1
            entry_id = f"{counter[0]}-{counter[1]}"
            self._hub.publish(run_id, StoredEvent(entry_id, name, data, encoded, last))
        else:
            self._hurry.set()
        if not self._pending:
            self._oldest = time.monotonic()
        self._pending.append(_Pending(run_id, name, data, encoded, last, entry_id))
        if self._flusher is None or self._flusher.done():
            # A context of its own: not the run that happened to start it (its trace, its ids
            # on log lines), since it writes every run's events.
            self._flusher = asyncio.create_task(
                self._flush(), name="event writer", context=contextvars.Context()
            )

    async def _flush(self) -> None:
        while self._pending:
            while self._delay_s and not self._hurry.is_set():
                left = self._oldest + self._delay_s - time.monotonic()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await self._hurry.wait()
            self._hurry.clear()
            if not self._pending:  # taken out by the runs' ends while waiting
                break
            batch, self._pending = self._pending, []
            for event in batch:
                self._in_flight[event.run_id] = self._in_flight.get(event.run_id, 0) + 1
            try:
                await self._write(batch)
            finally:  # whatever happened, no run waits for this batch any more
                for event in batch:
                    left = self._in_flight[event.run_id] - 1
                    if left:
                        self._in_flight[event.run_id] = left
                    else:
                        del self._in_flight[event.run_id]
                async with self._progress:
                    self._progress.notify_all()

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            written = await self._store.append_many(
                [(e.run_id, e.name, e.encoded, e.last, e.entry_id) for e in batch]
            )
        except Exception as exc:  # Redis down: those runs fail when they drain
            log.error("could not write %d run events: %s", len(batch), exc)
            written = [exc] * len(batch)
        for event, outcome in zip(batch, written, strict=True):
            if isinstance(outcome, BaseException):
                self._failures[event.run_id] = outcome
            elif event.entry_id is None and self._hub is not None:
                self._hub.publish(
                    event.run_id,
                    StoredEvent(outcome, event.name, event.data, event.encoded, event.last),
                )

    def _writing(self, run_id: str) -> bool:
        return run_id in self._in_flight

    async def drain(self, run_id: str) -> None:
        """Write the run's events appended so far and wait for them; raise if some were lost."""
        self._hurry.set()
        async with self._progress:
            await self._progress.wait_for(
                lambda: not self._writing(run_id) and all(e.run_id != run_id for e in self._pending)
            )
        self._raise_failure(run_id)

    async def take_rest(self, run_id: str) -> list[_Pending]:
        """The run's events not written yet, taken out for the caller to write with the run's
        end in one round trip (`RunStore.finish`), once those being written are; raise if some
        were lost."""
        async with self._progress:
            await self._progress.wait_for(lambda: not self._writing(run_id))
        rest = [e for e in self._pending if e.run_id == run_id]
        if rest:
            self._pending = [e for e in self._pending if e.run_id != run_id]
        self._raise_failure(run_id)
        return rest

    def published(self, run_id: str, event: StoredEvent) -> None:
        """An event of the run written by the caller (its end): to this process's followers."""
        if self._hub is not None:
            self._hub.publish(run_id, event)

    def _raise_failure(self, run_id: str) -> None:
        failure = self._failures.pop(run_id, None)
        if failure is not None:
            raise failure


@dataclass(frozen=True, slots=True)
class _Pending:
    """An event on its way to Redis."""

    run_id: str
    name: str
    data: Any
    encoded: bytes
    last: bool
    entry_id: str | None  # given here (already handed to the hub), or None: Redis assigns it


@dataclass(slots=True, eq=False)
class _Follower:
    cursor: str
    queue: asyncio.Queue[StoredEvent | None] = field(default_factory=asyncio.Queue)
    # Fed by this process's worker (not read from Redis): the run executes here and the
    # follower has every event of it so far.
    local: bool = False
    done: bool = False  # it has the run's last event
    # Wants only the last event (a `wait`): the others move its cursor without waking it.
    last_only: bool = False


@dataclass(slots=True)
class _Produced:
    """A run this process executes: its latest events, for followers that join or fall behind."""

    complete: bool  # `recent` holds every event of the run (it started here fresh; none dropped)
    recent: deque[StoredEvent] = field(default_factory=lambda: deque(maxlen=_RECENT))

    def add(self, event: StoredEvent) -> None:
        if len(self.recent) == _RECENT:
            self.complete = False
        self.recent.append(event)

    def after(self, cursor: str) -> list[StoredEvent] | None:
        """The events after `cursor`, when all of them are here."""
        position = _position(cursor)
        if not self.complete and (not self.recent or _position(self.recent[0].id) > position):
            return None
        return [e for e in self.recent if _position(e.id) > position]


class EventHub:
    def __init__(self, redis: Redis, store: RunStore) -> None:
        self._redis = redis
        self._store = store
        self._wake = f"switchboard:hub:{uuid.uuid4().hex}"
        self._wake_cursor = "0"
        self._followers: dict[str, set[_Follower]] = {}  # run id -> its followers here
        self._task: asyncio.Task[None] | None = None
        self._checked = 0.0  # when followed runs were last checked for existence
        self._produced: dict[str, _Produced] = {}  # runs this process's worker executes

    async def follow(
        self, run_id: str, after: str = "0", last_only: bool = False
    ) -> AsyncIterator[StoredEvent]:
        """The run's events after the entry id `after`, up to and including its last (with
        `last_only`, that one alone); ends early if the run (or its events) expired."""
        follower = _Follower(after, last_only=last_only)
        self._followers.setdefault(run_id, set()).add(follower)
        metrics.ACTIVE_STREAMS.inc()
        try:
            if not self._local(run_id, follower):
                await self._wake_up()
            while True:
                event = await follower.queue.get()
                if event is None:
                    return
                yield event
                if event.last:
                    return
        finally:
            metrics.ACTIVE_STREAMS.dec()
            followers = self._followers.get(run_id)
            if followers is not None:
                followers.discard(follower)
                if not followers:
                    del self._followers[run_id]

    # This process's worker: the runs it executes, and their events as they are made.
    def produce(self, run_id: str, fresh: bool) -> None:
        """This process executes the run; `fresh`: none of its events was written before."""
        self._produced[run_id] = _Produced(complete=fresh)

    def publish(self, run_id: str, event: StoredEvent) -> None:
        """An event of a run this process executes, with its Stream id: handed to the followers
        that have every event before it (the others read it from Redis)."""
        produced = self._produced.get(run_id)
        if produced is None:
            return
        produced.add(event)
        for follower in self._followers.get(run_id, ()):
            if follower.local:
                _deliver(follower, event)
            else:
                self._local(run_id, follower)

    def release(self, run_id: str) -> None:
        """This process no longer executes the run (ended, lost or stopped): its followers that
        have not seen its end read the rest from Redis, written by whichever worker has it."""
        self._produced.pop(run_id, None)
        behind = [f for f in self._followers.get(run_id, ()) if f.local and not f.done]
        for follower in behind:
            follower.local = False
        if behind:
            task = asyncio.create_task(
                self._wake_up(), name="event hub wake-up", context=contextvars.Context()
            )
            _waking.add(task)
            task.add_done_callback(_waking.discard)

    def _local(self, run_id: str, follower: _Follower) -> bool:
        """Whether the follower is fed here; it becomes so, given what it missed, when the run
        executes here and its recent events cover everything after the follower's cursor."""
        if not follower.local and not follower.done:
            produced = self._produced.get(run_id)
            missed = produced.after(follower.cursor) if produced is not None else None
            if missed is not None:
                follower.local = True
                for event in missed:
                    _deliver(follower, event)
        return follower.local

    async def _wake_up(self) -> None:
        if self._task is None or self._task.done():
            # Not in the context of the run whose follower started it: it serves them all.
            self._task = asyncio.create_task(
                self._read(), name="event hub", context=contextvars.Context()
            )
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
            remote = [f for f in followers if not f.done and not self._local(run_id, f)]
            if remote:
                earliest = min((f.cursor for f in remote), key=_position)
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
                    _deliver(follower, event)

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


# Wake-ups of the hub's reader sent from synchronous code: held so that they are not collected.
_waking: set[asyncio.Task[None]] = set()


def _deliver(follower: _Follower, event: StoredEvent) -> None:
    """Hand the event to the follower unless it has it already (it may arrive both from this
    process's worker and from Redis)."""
    if not follower.done and _position(event.id) > _position(follower.cursor):
        follower.cursor = event.id
        follower.done = event.last
        if event.last or not follower.last_only:
            follower.queue.put_nowait(event)


def _stored(entry_id: str, fields: dict[Any, Any]) -> StoredEvent:
    encoded = fields[b"d"]
    return StoredEvent(
        entry_id, as_text(fields[b"e"]), orjson.loads(encoded), encoded, b"last" in fields
    )
