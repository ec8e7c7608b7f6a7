"""A run's events on their way to clients (`switchboard.event_bus`), on a real Redis: handed
straight to this process's followers when the run executes here, read from Redis otherwise, and
the same events with the same ids either way."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from switchboard.event_bus import EventHub, EventWriter
from switchboard.runs import RunRecord, RunStore, StoredEvent
from switchboard.settings import RuntimeSettings

DELAY_MS = 300  # long enough to see events reach a follower before Redis has them


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RunStore]:
    redis = Redis.from_url(redis_url)
    yield RunStore(redis, RuntimeSettings())
    await redis.aclose()


async def _run(store: RunStore) -> str:
    """A run's record, and nothing queued: no worker of another test must execute it."""
    run_id = str(uuid.uuid4())
    record = RunRecord(run_id, str(uuid.uuid4()), "switchboard", "t", "langgraph", {})
    await store.redis.set(f"switchboard:run:{run_id}", record.to_json(), ex=600)
    return run_id


async def _take(events: AsyncIterator[StoredEvent], count: int) -> list[StoredEvent]:
    taken = []
    async with asyncio.timeout(5):
        async for event in events:
            taken.append(event)
            if len(taken) == count:
                break
    return taken


async def _in_redis(store: RunStore, run_id: str) -> list[tuple[str, bytes]]:
    entries = await store.redis.xrange(store.events_key(run_id))
    return [(i.decode(), fields[b"d"]) for i, fields in entries]


async def test_a_run_executing_here_reaches_its_followers_before_redis_and_redis_gets_the_same(
    store: RunStore,
) -> None:
    hub = EventHub(store.redis, store)
    writer = EventWriter(store, hub, delay_ms=DELAY_MS)
    run_id = await _run(store)
    try:
        writer.open(run_id, fresh=True)
        early = hub.follow(run_id)
        first = asyncio.ensure_future(_take(early, 3))
        await asyncio.sleep(0)  # the follower registers
        for n in range(3):
            writer.append(run_id, "custom", {"n": n})
        seen = await first
        assert [e.data for e in seen] == [{"n": 0}, {"n": 1}, {"n": 2}]
        # A follower joining from the start, and one resuming after the second event, are
        # served from the run's recent events.
        late = await _take(hub.follow(run_id), 3)
        resumed = await _take(hub.follow(run_id, after=seen[1].id), 1)
        assert await _in_redis(store, run_id) == []  # none of it waited for Redis
        assert late == seen
        assert resumed == seen[2:]

        await writer.drain(run_id)
        stored = await _in_redis(store, run_id)
        assert [(e.id, e.encoded) for e in seen] == stored
        await early.aclose()
    finally:
        writer.close(run_id)
        await hub.close()


async def test_a_follower_further_behind_than_memory_catches_up_from_redis(
    store: RunStore,
) -> None:
    hub = EventHub(store.redis, store)
    writer = EventWriter(store, hub, delay_ms=DELAY_MS)
    run_id = await _run(store)
    count = 1100  # more than the hub keeps
    try:
        writer.open(run_id, fresh=True)
        for n in range(count):
            writer.append(run_id, "custom", {"n": n})
        follower = hub.follow(run_id)
        catching_up = asyncio.ensure_future(_take(follower, count + 1))
        await asyncio.sleep(0.05)
        assert not catching_up.done()  # nothing until Redis has them
        await writer.drain(run_id)
        writer.append(run_id, "custom", {"n": count})
        events = await catching_up
        assert [e.data["n"] for e in events] == list(range(count + 1))
        await writer.drain(run_id)
        assert [e.id for e in events] == [i for i, _ in await _in_redis(store, run_id)]
        await follower.aclose()
    finally:
        writer.close(run_id)
        await hub.close()


async def test_a_follower_goes_back_to_redis_when_the_run_leaves_this_process(
    store: RunStore,
) -> None:
    hub = EventHub(store.redis, store)
    here = EventWriter(store, hub, delay_ms=DELAY_MS)
    elsewhere = EventWriter(store)  # another worker process: no hub
    run_id = await _run(store)
    try:
        here.open(run_id, fresh=True)
        follower = hub.follow(run_id)
        first = asyncio.ensure_future(_take(follower, 2))
        await asyncio.sleep(0)
        here.append(run_id, "custom", {"n": 0})
        here.append(run_id, "custom", {"n": 1})
        await here.drain(run_id)
        before = await first
        here.close(run_id)  # lost to another worker, which goes on writing
        elsewhere.append(run_id, "custom", {"n": 2})
        elsewhere.append(run_id, "end", None, last=True)
        after = await _take(follower, 2)
        assert [e.data for e in before + after] == [{"n": 0}, {"n": 1}, {"n": 2}, None]
        assert after[-1].last
        ids = [e.id for e in before + after]
        assert ids == [i for i, _ in await _in_redis(store, run_id)]
        await follower.aclose()
    finally:
        await hub.close()


async def test_an_event_refused_by_redis_fails_only_its_own_run(store: RunStore) -> None:
    """An id that is not past the Stream's last one (another worker wrote after this one lost
    the run) is refused; the other runs of the same batch are written."""
    hub = EventHub(store.redis, store)
    writer = EventWriter(store, hub, delay_ms=DELAY_MS)
    lost, fine = await _run(store), await _run(store)
    try:
        writer.open(lost, fresh=True)
        writer.open(fine, fresh=True)
        await store.append_many([(lost, "custom", b"{}", False, "99999999999999-1")])
        writer.append(lost, "custom", {"n": 0})
        writer.append(fine, "custom", {"n": 0})
        with pytest.raises(Exception, match="equal or smaller"):
            await writer.drain(lost)
        await writer.drain(fine)
        assert [d for _, d in await _in_redis(store, fine)] == [b'{"n":0}']
    finally:
        writer.close(lost)
        writer.close(fine)
        await hub.close()


async def test_a_follower_of_the_outcome_alone_is_handed_only_the_last_event(
    store: RunStore,
) -> None:
    """A `wait` or a `join` follows a run for its outcome: the run's other events move its place
    without waking it, whether they come from this process's worker or from Redis."""
    hub = EventHub(store.redis, store)
    here = EventWriter(store, hub, delay_ms=DELAY_MS)
    elsewhere = EventWriter(store)  # another worker process: read back from Redis
    local, remote = await _run(store), await _run(store)
    try:
        here.open(local, fresh=True)
        followers = [hub.follow(local, last_only=True), hub.follow(remote, last_only=True)]
        firsts = [asyncio.ensure_future(_take(f, 1)) for f in followers]
        await asyncio.sleep(0)  # the followers register
        for writer, run_id in ((here, local), (elsewhere, remote)):
            for n in range(3):
                writer.append(run_id, "values", {"n": n})
            writer.append(run_id, "end", {"status": "success"}, last=True)
        handed = [await first for first in firsts]
        await here.drain(local)
        await elsewhere.drain(remote)
        for follower in followers:
            await follower.aclose()
        for events in handed:
            assert [(e.name, e.data, e.last) for e in events] == [
                ("end", {"status": "success"}, True)
            ]
    finally:
        here.close(local)
        await hub.close()


async def test_a_batch_waits_its_delay_from_its_own_oldest_event(store: RunStore) -> None:
    """A run's end takes its unwritten events out (`take_rest`, written with the end); the next
    run's events then wait the full delay from the first of them, not from the taken ones: a
    write sooner would be a round trip that the next run's end would have carried."""
    hub = EventHub(store.redis, store)
    writer = EventWriter(store, hub, delay_ms=DELAY_MS)
    first, second = await _run(store), await _run(store)
    try:
        for run_id in (first, second):
            writer.open(run_id, fresh=True)
        loop = asyncio.get_running_loop()
        started = loop.time()
        writer.append(first, "values", {"n": 0})
        await asyncio.sleep(DELAY_MS / 4000)  # the first run goes on; its batch is waiting
        assert len(await writer.take_rest(first)) == 1
        await asyncio.sleep(started + DELAY_MS / 2000 - loop.time())
        writer.append(second, "values", {"n": 1})
        appended = loop.time()
        # Past the first event's deadline, well before the second's.
        await asyncio.sleep(started + DELAY_MS * 1.25 / 1000 - loop.time())
        assert await _in_redis(store, second) == []
        async with asyncio.timeout(5):
            while not await _in_redis(store, second):
                await asyncio.sleep(0.01)
        assert loop.time() - appended >= DELAY_MS / 1000
        assert await _in_redis(store, first) == []
    finally:
        for run_id in (first, second):
            writer.close(run_id)
        await hub.close()
