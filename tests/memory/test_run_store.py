"""A run's start and end (`RunStore.create`, `RunStore.finish`) and the checkpointer, on the real
Redis: the checkpoint saves held back while the run executed (`HELD_SAVES`) are written with its
end, as the checkpointer writes its own, and not when another worker has the run; an end sent
again after its reply was lost (a real connection cut by a proxy between the store and Redis)
writes nothing twice; and a run started on a thread without saved state is told so
(`FRESH_THREADS`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from langgraph.checkpoint.base import Checkpoint
from redis.asyncio import Redis

from memory.threads import Checkpointer, ThreadRegistry
from switchboard.runs import (
    FRESH_THREADS,
    GROUP,
    HELD_SAVES,
    QUEUE,
    CheckpointSave,
    RunRecord,
    RunStore,
    encode,
)
from switchboard.settings import RuntimeSettings
from switchboard.worker import worker_name
from tests.memory.test_checkpointer import TTL, _checkpoint, _config, _stored

METADATA = {"source": "loop", "step": 1, "parents": {}, "run_id": "r-1"}
ENTRY = "0-1"  # the run's queue entry: none is queued (no worker of another test may take it)
WORKER = worker_name()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await RunStore(client, RuntimeSettings()).ensure_group()
    yield client
    # Other suites on this Redis read the queue's consumers as their worker processes.
    await client.xgroup_delconsumer(QUEUE, GROUP, WORKER)
    await client.aclose()


async def _executing(store: RunStore, lease_holder: str = WORKER) -> RunRecord:
    """A run as a worker holds it while it executes: its record, its place on its thread, its
    lease."""
    thread_id = f"t-{uuid.uuid4().hex}"
    record = RunRecord(str(uuid.uuid4()), thread_id, "switchboard", "t", "langgraph", {})
    record.status = "running"
    await store.redis.set(f"switchboard:run:{record.run_id}", record.to_json(), ex=600)
    await store.redis.zadd(f"switchboard:thread-active:{thread_id}", {record.run_id: 1})
    await store.redis.set(f"switchboard:run:{record.run_id}:lease", lease_holder, px=60000)
    return record


async def _held_save(
    saver: Checkpointer, thread_id: str, checkpoint: Checkpoint | None = None
) -> list[CheckpointSave]:
    held: list[CheckpointSave] = []
    token = HELD_SAVES.set(held)
    try:
        await saver.aput(_config(thread_id), checkpoint or _checkpoint(None), METADATA, {})  # type: ignore[arg-type]
    finally:
        HELD_SAVES.reset(token)
    return held


def _ended(record: RunRecord) -> bytes:
    record.status, record.output = "success", {"answer": "In Norway."}
    return encode({"status": record.status, "output": record.output, "error": None})


async def test_held_saves_are_written_with_the_run_end_as_the_checkpointer_writes_them(
    client: Redis,
) -> None:
    store = RunStore(client, RuntimeSettings())
    saver = Checkpointer(redis_client=client, ttl=TTL)
    await saver.asetup()
    record = await _executing(store)
    checkpoint = _checkpoint(None)

    held = await _held_save(saver, record.thread_id, checkpoint)
    assert len(held) == 1
    assert await saver.aget_tuple(_config(record.thread_id)) is None  # held, not written

    written = await store.finish(record, _ended(record), ENTRY, WORKER, (), held)
    assert written is not None and len(written) == 1  # the closing event

    # What the checkpointer's own save writes, for another thread.
    other = f"t-{uuid.uuid4().hex}"
    await saver.aput(_config(other), checkpoint, METADATA, {})  # type: ignore[arg-type]
    ends, own = await _stored(client, saver, record.thread_id), await _stored(client, saver, other)
    assert ends["key"] == own["key"].replace(other, record.thread_id)
    for stored in (ends, own):
        stored["document"].pop("checkpoint_ts")
        assert stored["document"].pop("thread_id") in (record.thread_id, other)
    assert ends["document"] == own["document"]
    assert 3500 < ends["key_ttl"] <= 3600 and 3500 < ends["pointer_ttl"] <= 3600
    loaded = await saver.aget_tuple(_config(record.thread_id))
    assert loaded is not None and loaded.checkpoint["channel_values"]["route"] == "direct"


async def test_held_saves_are_dropped_when_another_worker_has_the_run(client: Redis) -> None:
    store = RunStore(client, RuntimeSettings())
    saver = Checkpointer(redis_client=client, ttl=TTL)
    await saver.asetup()
    record = await _executing(store, lease_holder="another-worker")
    held = await _held_save(saver, record.thread_id)

    assert await store.finish(record, _ended(record), ENTRY, WORKER, (), held) is None
    assert await saver.aget_tuple(_config(record.thread_id)) is None  # that worker writes it


async def test_writes_after_a_held_save_send_it_first(client: Redis) -> None:
    """Pending writes belong to a checkpoint (upstream marks it as having writes): a held save
    is written before them, not with the run's end."""
    saver = Checkpointer(redis_client=client, ttl=TTL)
    await saver.asetup()
    thread_id = f"t-{uuid.uuid4().hex}"
    held: list[CheckpointSave] = []
    token = HELD_SAVES.set(held)
    try:
        saved = await saver.aput(_config(thread_id), _checkpoint(None), METADATA, {})  # type: ignore[arg-type]
        await saver.aput_writes(saved, [("answer", "partial")], "task-1")
    finally:
        HELD_SAVES.reset(token)
    assert held == []
    loaded = await saver.aget_tuple(_config(thread_id))
    assert loaded is not None
    assert loaded.pending_writes == [("task-1", "answer", "partial")]


class _ReplyCutter:
    """A TCP proxy in front of Redis that, once, passes on a command containing `marker` and
    then cuts the client's connection instead of passing on the reply: the command ran, and its
    sender never hears so."""

    def __init__(self, redis_port: int, marker: bytes) -> None:
        self._redis_port = redis_port
        self._marker = marker
        self.cut = False
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for handler in self._handlers:
            handler.cancel()  # each closes its two connections
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._redis_port)
        replies = asyncio.ensure_future(self._replies(up_reader, writer))
        try:
            while data := await reader.read(65536):
                cutting = not self.cut and self._marker in data
                if cutting:
                    self.cut = True
                    replies.cancel()  # this connection's reply never passes
                up_writer.write(data)
                await up_writer.drain()
                if cutting:
                    await asyncio.sleep(0.2)  # Redis runs it
                    writer.transport.abort()
                    break
        finally:
            replies.cancel()
            up_writer.close()
            writer.close()

    @staticmethod
    async def _replies(up_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await up_reader.read(65536):
            writer.write(data)
            await writer.drain()


async def test_a_run_end_sent_again_after_its_reply_was_lost_writes_nothing_twice(
    client: Redis,
) -> None:
    saver = Checkpointer(redis_client=client, ttl=TTL)
    await saver.asetup()
    port = client.connection_pool.connection_kwargs["port"]
    cutter = _ReplyCutter(port, marker=b"'xack', KEYS[5]")  # the finishing script
    through = Redis(port=await cutter.start())
    store = RunStore(through, RuntimeSettings())
    try:
        record = await _executing(store)
        held = await _held_save(saver, record.thread_id)
        events = [("values", encode({"answer": "In Norway."}), False, None)]

        written = await store.finish(record, _ended(record), ENTRY, WORKER, events, held)

        assert cutter.cut  # the first reply was lost; the second attempt found its work done
        assert written == []
        stream = await client.xrange(store.events_key(record.run_id))
        assert [fields[b"e"] for _, fields in stream] == [b"values", b"end"]
        saved = RunRecord.from_json(await client.get(f"switchboard:run:{record.run_id}"))
        assert saved.status == "success" and saved.output == {"answer": "In Norway."}
        assert (
            await client.zscore(f"switchboard:thread-active:{record.thread_id}", record.run_id)
            is None
        )
        assert await saver.aget_tuple(_config(record.thread_id)) is not None
    finally:
        await through.aclose()
        await cutter.close()


async def test_a_run_started_on_a_thread_without_saved_state_loads_it_without_redis(
    client: Redis,
) -> None:
    """The script that queues and starts a run reports whether its thread has saved state; on
    a thread without any, the run's first load is answered here (once), and Redis is asked for
    every later one."""
    store = RunStore(client, RuntimeSettings())
    saver = Checkpointer(redis_client=client, ttl=TTL)
    await saver.asetup()
    threads = ThreadRegistry(client, 60, saver.state_key)
    new, used = f"t-{uuid.uuid4().hex}", f"t-{uuid.uuid4().hex}"
    await saver.aput(_config(used), _checkpoint(None), METADATA, {})  # type: ignore[arg-type]

    fresh: dict[str, bool] = {}
    for thread_id in (new, used):
        record = RunRecord(str(uuid.uuid4()), thread_id, "switchboard", "t", "langgraph", {})
        owner = threads.owned_by(thread_id, "t", None, "switchboard")
        _, claim = await store.create(record, worker=WORKER, owner=owner)
        assert claim is not None and claim.record is not None  # started at once
        await store.ack(claim.entry_id)
        fresh[thread_id] = claim.fresh
    assert fresh == {new: True, used: False}

    token = FRESH_THREADS.set({used})  # as if it had none: the hint is taken on trust, once
    try:
        assert await saver.aget_tuple(_config(used)) is None
        assert await saver.aget_tuple(_config(used)) is not None
    finally:
        FRESH_THREADS.reset(token)
