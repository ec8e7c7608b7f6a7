"""Runs in Redis: each run's record, the order of runs on a thread, each run's events, the work
queue that workers read, leases and cancellation.

Keys (all under `switchboard:`):
- `run:<id>` — the run's record (JSON), expiring `retention_minutes` after it finishes;
- `run:<id>:events` — a Stream of its events (`e`: name, `d`: JSON data; the last one also has
  `last`), capped at `events_max_len` and expiring with the record. Entry ids are the SSE event
  ids, so `Last-Event-ID` resumes exactly after what a client saw, through any API replica;
- `thread-runs:<thread>` — its runs by creation time (listing); `thread-active:<thread>` — its
  unfinished runs in order: a run executes only at the head, so runs on a thread never overlap;
- `runs:queue` — a Stream of run ids with the consumer group `workers`. An entry is acknowledged
  and deleted when its run has finished, so its length is the number of unfinished runs;
- `run:<id>:lease` — the worker executing it, renewed while it runs; a run whose lease lapsed is
  reclaimed by another worker (`XAUTOCLAIM`);
- `run:<id>:cancel` — set to `interrupt` or `rollback` to stop it; workers poll their runs' keys;
- `idempotency:<tenant>:<key>` — the run that a key created.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from switchboard import metrics
from switchboard.errors import NotFound, SwitchboardError
from switchboard.retrying import waiting_out
from switchboard.settings import RuntimeSettings

RunStatus = Literal["pending", "running", "success", "error", "interrupted", "timeout"]
FINISHED: frozenset[str] = frozenset({"success", "error", "interrupted", "timeout"})
RunKind = Literal["chat", "langgraph"]
CancelAction = Literal["interrupt", "rollback"]

_PREFIX = "switchboard:"
QUEUE = f"{_PREFIX}runs:queue"
GROUP = "workers"
# Below the client's 5 s socket timeout, so a blocked read never looks like a dead socket.
_BLOCK_MS = 2000
# How long a run's end waits for a Redis that stopped answering (its answer is not lost).
_FINISH_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class CheckpointSave:
    """A checkpoint as the checkpointer writes it: its document (JSON), the thread's pointer to
    its latest checkpoint, and their expiry (0: none)."""

    key: str
    latest_key: str
    document: bytes
    ttl_s: int


# How a checkpoint is written (`CheckpointSave`), as a Lua function for the scripts that save one
# (the checkpointer's own, `RunStore.finish`'s).
SAVE_CHECKPOINT_FUNCTION = """
local function save_checkpoint(key, latest, document, ttl)
redis.call('JSON.SET', key, '$', document)
redis.call('SET', latest, key)
if tonumber(ttl) > 0 then
  redis.call('EXPIRE', key, ttl)
  redis.call('EXPIRE', latest, ttl)
end
end
"""

# The checkpoint saves of the run executing in this context, held back to be written with its
# end by `RunStore.finish`: one round trip fewer per run. The worker sets it (a list) for the
# runs whose state is saved only at their end and read only after it (LangGraph runs, durability
# `exit`); the checkpointer appends to it instead of writing, unless it must write at once.
HELD_SAVES: ContextVar[list[CheckpointSave] | None] = ContextVar("held_saves", default=None)

# The thread of the run executing in this context, when the script that started it found no
# saved state on it: first on its thread, nothing can save there before the run loads, so the
# checkpointer answers that load without a round trip (once; a save ends it). Set by the worker.
FRESH_THREADS: ContextVar[set[str] | None] = ContextVar("fresh_threads", default=None)


class QueueFull(SwitchboardError):
    status = 503
    type = "server_error"
    code = "queue_full"


class QueueUnavailable(SwitchboardError):
    """Redis, which holds the runs and their queue, cannot be reached."""

    status = 503
    type = "store_error"
    code = "queue_unavailable"


@dataclass(slots=True)
class RunRecord:
    run_id: str
    thread_id: str
    assistant_id: str  # the workflow
    tenant: str
    kind: RunKind  # chat: the native event model; langgraph: LangGraph Server stream modes
    input: dict[str, Any] | None
    options: dict[str, Any] = field(default_factory=dict)  # route, user, max_tokens, ...
    stream_modes: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    multitask_strategy: str = "enqueue"
    webhook: str | None = None
    stateless: bool = False  # a thread of its own, forgotten when the run ends
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    status: RunStatus = "pending"
    attempt: int = 0
    # When its first attempt began: checkpoints written after it are the run's own (a reclaimed
    # run resumes from them; rolling back removes them from the thread's head).
    started_at: float | None = None
    output: dict[str, Any] | None = None  # the final values
    error: dict[str, Any] | None = None
    # Its trace (`switchboard.tracing`): chosen when it is made, the caller's when it sent one.
    trace_id: str = ""
    parent_span_id: str | None = None
    # Whose rate limits its tokens count against (`switchboard.ratelimit`); None: nobody's.
    rate_subject: str | None = None

    def to_json(self) -> bytes:
        return encode({name: getattr(self, name) for name in _FIELDS})

    @classmethod
    def from_json(cls, raw: bytes | str) -> RunRecord:
        """A stored record; fields this version does not know (written by another) are
        ignored, so replicas of two versions can share a queue during a rolling update."""
        fields = orjson.loads(raw)
        return cls(**{k: v for k, v in fields.items() if k in _FIELDS})

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


# LangGraph's server names each graph's default assistant uuid5(this, graph name).
_ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


def assistant_uuid(workflow: str) -> str:
    return str(uuid.uuid5(_ASSISTANT_NAMESPACE, workflow))


_FIELDS = tuple(RunRecord.__dataclass_fields__)


def encode(value: Any) -> bytes:
    """JSON for Redis and SSE (orjson: a run's every event is encoded once, on the hot path)."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # what orjson refuses and json takes (integers beyond 64 bits)
        return json.dumps(value, default=str, separators=(",", ":")).encode()


def new_run_id() -> str:
    # UUIDs, as LangGraph's server uses; the SDK passes them through unchanged.
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: str  # the Stream entry id: the SSE event id
    name: str
    data: Any
    encoded: bytes  # `data` as JSON, as stored (SSE frames reuse it)
    last: bool


class ThreadNotFound(NotFound):
    """The run's thread does not exist, or is another tenant's (the same answer: ids do not
    leak)."""


@dataclass(frozen=True, slots=True)
class OwnedBy:
    """The run's thread, claimed and checked by the queueing script itself: `claim` (Lua that
    defines `local function claim(KEYS, ARGV)`: the thread's claim for this turn) runs first,
    with `keys` and `args`; the thread must then belong to `tenant` (its owner hash is `key`)."""

    key: str
    tenant: str
    claim: str
    keys: tuple[str, ...]
    args: tuple[Any, ...]
    # The thread's pointer to its saved state (the checkpointer's latest checkpoint), when
    # known: a run that starts at once learns whether the thread has any (`Claim.fresh`).
    state_key: str | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """A queue entry that `create` handed to the worker that asked, in the same round trip.
    `record` is set when it is the new run and it started (now running, with the worker's
    lease); otherwise the worker takes `run_id` as it takes any run."""

    entry_id: str
    run_id: str
    record: RunRecord | None
    # The started run's thread had no saved state (see `FRESH_THREADS`).
    fresh: bool = False


def as_text(value: Any) -> str:
    """A Redis reply (bytes, or str from a decoding client) as str."""
    return value.decode() if isinstance(value, bytes) else value


class RunStore:
    def __init__(self, redis: Redis, settings: RuntimeSettings) -> None:
        self.redis = redis
        self.settings = settings

    # Keys.
    @staticmethod
    def _run(run_id: str) -> str:
        return f"{_PREFIX}run:{run_id}"

    @staticmethod
    def _events(run_id: str) -> str:
        return f"{_PREFIX}run:{run_id}:events"

    @staticmethod
    def _lease(run_id: str) -> str:
        return f"{_PREFIX}run:{run_id}:lease"

    @staticmethod
    def _cancel(run_id: str) -> str:
        return f"{_PREFIX}run:{run_id}:cancel"

    @staticmethod
    def _thread_runs(thread_id: str) -> str:
        return f"{_PREFIX}thread-runs:{thread_id}"

    @staticmethod
    def _active(thread_id: str) -> str:
        return f"{_PREFIX}thread-active:{thread_id}"

    @staticmethod
    def _idempotency(tenant: str, key: str) -> str:
        return f"{_PREFIX}idempotency:{tenant}:{key}"

    @property
    def _retention_s(self) -> int:
        return self.settings.retention_minutes * 60

    # Records.
    async def create(
        self,
        record: RunRecord,
        idempotency_key: str | None = None,
        worker: str | None = None,
        owner: OwnedBy | None = None,
    ) -> tuple[RunRecord, Claim | None]:
        """Store a new run and queue it; with an idempotency key already used, the run that
        key created instead (nothing new is queued). With `worker` (one with a free slot), the
        oldest queued run is also handed to it — normally this one, started at once when it is
        first on its thread. With `owner`, the thread's claim goes first in the same round trip
        and the run is made only on the tenant's own thread. Raises `QueueFull`,
        `QueueUnavailable`, `ThreadNotFound`."""
        try:
            return await self._create(record, idempotency_key, worker, owner)
        except (RedisError, OSError) as exc:
            raise QueueUnavailable(f"the run queue (Redis) is unavailable: {exc}") from exc

    async def _create(
        self,
        record: RunRecord,
        idempotency_key: str | None,
        worker: str | None,
        owner: OwnedBy | None,
    ) -> tuple[RunRecord, Claim | None]:
        # The key is claimed in the same script that queues the run, so two requests racing
        # with one key make one run.
        key = self._idempotency(record.tenant, idempotency_key) if idempotency_key else ""
        running = replace(record, status="running", attempt=1, started_at=record.created_at)
        script = _UNCLAIMED
        claim_keys: tuple[str, ...] = ()
        if owner is not None:
            claim_keys = owner.keys + ((owner.state_key,) if owner.state_key else ())
            script = _claiming(owner.claim, len(owner.keys), len(owner.args), bool(owner.state_key))
        with metrics.timed("redis", "run_create"):
            reply: Any = await self.redis.eval(
                script,
                7 + len(claim_keys),
                QUEUE,
                self._run(record.run_id),
                self._thread_runs(record.thread_id),
                self._active(record.thread_id),
                key or f"{_PREFIX}idempotency:-",
                self._lease(record.run_id),
                owner.key if owner else f"{_PREFIX}thread:-",
                *claim_keys,
                self.settings.max_queued,
                record.to_json(),
                record.run_id,
                record.created_at,
                self._retention_s if key else 0,
                f"{_PREFIX}run:",
                worker or "",
                running.to_json() if worker else "",
                self.settings.lease_ms,
                owner.tenant if owner else "",
                *(owner.args if owner else ()),
            )
        outcome = reply[0]
        if outcome == 3:
            raise ThreadNotFound(f"thread {record.thread_id!r} not found", param="thread_id")
        if outcome == 0:
            raise QueueFull(f"{self.settings.max_queued} runs are queued or running; try later")
        if outcome == 2:  # the run this key created before
            existing = await self.get(as_text(reply[1]))
            return (existing or record), None
        if len(reply) == 1:
            return record, None
        entry_id, run_id = as_text(reply[1]), as_text(reply[2])
        if len(reply) >= 4:  # started
            return running, Claim(entry_id, run_id, running, fresh=reply[4:] == [0])
        return record, Claim(entry_id, run_id, None)

    async def idempotent(self, tenant: str, key: str) -> RunRecord | None:
        """The run an idempotency key created, if it still exists."""
        run_id = await self.redis.get(self._idempotency(tenant, key))
        return await self.get(as_text(run_id)) if run_id else None

    async def get(self, run_id: str) -> RunRecord | None:
        """The run's record; raises `QueueUnavailable` while Redis cannot be reached."""
        try:
            raw = await self.redis.get(self._run(run_id))
        except (RedisError, OSError) as exc:
            raise QueueUnavailable(f"the run store (Redis) is unavailable: {exc}") from exc
        return RunRecord.from_json(raw) if raw else None

    async def start(self, record: RunRecord) -> tuple[bool, CancelAction | None]:
        """Save the record (now running) if the run is at the head of its thread's runs: (True,
        None); (False, None), nothing saved, while an earlier run on the thread is unfinished;
        (False, the action) when it was cancelled before its turn came. One round trip."""
        record.updated_at = time.time()
        reply: Any = await self.redis.eval(
            _START,
            3,
            self._active(record.thread_id),
            self._run(record.run_id),
            self._cancel(record.run_id),
            record.run_id,
            record.to_json(),
        )
        cancel = cast(CancelAction, as_text(reply[1])) if len(reply) > 1 else None
        return bool(reply[0]), cancel

    async def delete(self, record: RunRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._run(record.run_id), self._events(record.run_id))
            pipe.zrem(self._thread_runs(record.thread_id), record.run_id)
            pipe.zrem(self._active(record.thread_id), record.run_id)
            await pipe.execute()

    async def list_runs(
        self, thread_id: str, limit: int = 10, offset: int = 0, status: str | None = None
    ) -> list[RunRecord]:
        """The thread's runs, newest first. Without a status, only the page is read. Raises
        `QueueUnavailable` while Redis cannot be reached."""
        try:
            return await self._list_runs(thread_id, limit, offset, status)
        except (RedisError, OSError) as exc:
            raise QueueUnavailable(f"the run store (Redis) is unavailable: {exc}") from exc

    async def _list_runs(
        self, thread_id: str, limit: int, offset: int, status: str | None
    ) -> list[RunRecord]:
        key = self._thread_runs(thread_id)
        if status is None:
            ids = await self.redis.zrevrange(key, offset, offset + limit - 1)
        else:
            ids = await self.redis.zrevrange(key, 0, -1)
        raws = await self.redis.mget([self._run(as_text(i)) for i in ids]) if ids else []
        records = [RunRecord.from_json(r) for r in raws if r]
        if status is None:
            return records
        return [r for r in records if r.status == status][offset : offset + limit]

    async def active(self, thread_id: str) -> list[str]:
        """The thread's unfinished runs, oldest (executing or next) first."""
        return [as_text(i) for i in await self.redis.zrange(self._active(thread_id), 0, -1)]

    async def finish(
        self,
        record: RunRecord,
        summary: bytes,
        entry_id: str,
        worker: str,
        events: Sequence[tuple[str, bytes, bool, str | None]] = (),
        saves: Sequence[CheckpointSave] = (),
    ) -> list[str] | None:
        """In one script, unless another worker holds the run's lease (None: it has the run
        now and writes the rest): the run's held checkpoint `saves`, its remaining `events`
        ((name, JSON data, last, entry id or None for Redis to assign)), its closing event
        (`summary`, JSON), its final state, the next run on its thread let go, its queue entry
        acknowledged and its lease released — so a crash never leaves one without the others.
        A run deleted meanwhile (its thread forgotten) is not brought back. Returns the ids of
        the events written, the closing one last ([]: the run was deleted, or this end had
        been written already). Waits up to `_FINISH_WAIT_S` for a Redis that does not answer:
        sent again, the script finds its record written and does nothing more."""
        record.updated_at = time.time()
        flat: list[Any] = []
        for name, encoded, last, event_id in events:
            flat += [event_id or "*", name, encoded, "1" if last else "0"]
        keys = [
            self._run(record.run_id),
            self._events(record.run_id),
            self._active(record.thread_id),
            self._thread_runs(record.thread_id),
            QUEUE,
            self._lease(record.run_id),
        ]
        for save in saves:
            keys += [save.key, save.latest_key]
            flat += [save.document, save.ttl_s]
        args = [
            record.to_json(),
            summary,
            record.run_id,
            self._retention_s,
            self.settings.events_max_len,
            entry_id,
            worker,
            len(events),
            *flat,
        ]

        async def send() -> Any:
            with metrics.timed("redis", "run_finish"):
                return await self.redis.eval(_FINISH, len(keys), *keys, *args)

        reply = await waiting_out(send, (RedisError, OSError), _FINISH_WAIT_S)
        if reply[0] == 0:
            return None
        return [as_text(i) for i in reply[1:]]

    async def forget_thread(self, thread_id: str) -> int:
        """Delete the thread's runs and their events; how many runs there were."""
        ids = [as_text(i) for i in await self.redis.zrange(self._thread_runs(thread_id), 0, -1)]
        # Cancel keys stay (they expire): a run in flight must still see its cancellation.
        keys = [k for i in ids for k in (self._run(i), self._events(i))]
        await self.redis.delete(self._thread_runs(thread_id), self._active(thread_id), *keys)
        return len(ids)

    # Events.
    async def append_many(
        self, events: Sequence[tuple[str, str, bytes, bool, str | None]]
    ) -> list[str | BaseException]:
        """(run id, name, JSON data, last, entry id or None for Redis to assign) events, in
        order, in one round trip: each one's id, or why it was not written (an id given that is
        not past the run's last one: another worker took the run over)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for run_id, name, encoded, last, entry_id in events:
                fields: dict[Any, Any] = {"e": name, "d": encoded}
                if last:
                    fields["last"] = "1"
                pipe.xadd(
                    self._events(run_id),
                    fields,
                    id=entry_id or "*",
                    maxlen=self.settings.events_max_len,
                    approximate=True,
                )
            replies = await pipe.execute(raise_on_error=False)
        return [r if isinstance(r, BaseException) else as_text(r) for r in replies]

    def events_key(self, run_id: str) -> str:
        return self._events(run_id)

    @staticmethod
    def run_of_events_key(key: str) -> str:
        return key[len(f"{_PREFIX}run:") : -len(":events")]

    async def runs_exist(self, run_ids: Sequence[str]) -> list[bool]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.exists(self._run(run_id))
            return [bool(n) for n in await pipe.execute()]

    # Cancellation.
    async def request_cancel(self, run_id: str, action: CancelAction) -> None:
        await self.redis.set(self._cancel(run_id), action, ex=self._retention_s)

    async def cancel_requests(self, run_ids: Sequence[str]) -> dict[str, CancelAction]:
        if not run_ids:
            return {}
        values = await self.redis.mget([self._cancel(r) for r in run_ids])
        return {
            r: cast(CancelAction, as_text(v)) for r, v in zip(run_ids, values, strict=True) if v
        }

    # Leases.
    async def take(
        self, run_id: str, worker: str
    ) -> tuple[bool, RunRecord | None, CancelAction | None]:
        """In one round trip: the run's lease for this worker (False: another holds it), its
        record, and a cancellation requested before it started."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self._lease(run_id), worker, nx=True, px=self.settings.lease_ms)
            pipe.get(self._run(run_id))
            pipe.get(self._cancel(run_id))
            acquired, raw, cancel = await pipe.execute()
        record = RunRecord.from_json(raw) if raw else None
        return bool(acquired), record, cast(CancelAction, as_text(cancel)) if cancel else None

    async def renew(self, run_ids: Sequence[str], worker: str) -> list[str]:
        """Renew this worker's leases; the runs whose lease another worker now holds."""
        lost = []
        for run_id in run_ids:
            renewed = await self.redis.eval(
                _RENEW, 1, self._lease(run_id), worker, self.settings.lease_ms
            )
            if not renewed:
                lost.append(run_id)
        return lost

    async def release(self, run_id: str, worker: str) -> None:
        await self.redis.eval(_RELEASE, 1, self._lease(run_id), worker)

    async def hand_back(self, entry_id: str, run_id: str, worker: str) -> bool:
        """Put a run this worker holds but will not finish back in the queue as a new entry, so
        that another worker reads it at once (not after its lease lapses); False when it is no
        longer this worker's (another has reclaimed it)."""
        handed = await self.redis.eval(
            _HAND_BACK, 2, QUEUE, self._lease(run_id), GROUP, entry_id, worker, run_id
        )
        return bool(handed)

    # The work queue.
    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(QUEUE, GROUP, id="0", mkstream=True)
        except Exception as exc:  # BUSYGROUP: it exists already
            if "BUSYGROUP" not in str(exc):
                raise

    async def next_runs(self, consumer: str, count: int) -> list[tuple[str, str]]:
        """Up to `count` newly queued runs for this consumer: (entry id, run id)."""
        reply: Any = await self.redis.xreadgroup(
            GROUP, consumer, {QUEUE: ">"}, count=count, block=_BLOCK_MS
        )
        if not reply:
            return []
        return [(as_text(e), as_text(f[b"run_id"])) for e, f in reply[0][1]]

    async def reclaim(self, consumer: str, count: int) -> list[tuple[str, str]]:
        """Runs whose worker stopped renewing them (idle longer than a lease)."""
        reply: Any = await self.redis.xautoclaim(
            QUEUE, GROUP, consumer, min_idle_time=self.settings.lease_ms, count=count
        )
        return [(as_text(e), as_text(f[b"run_id"])) for e, f in reply[1] if f]

    async def touch(self, consumer: str, entry_ids: Sequence[str]) -> None:
        """Reset the idle time of entries this worker is executing (a heartbeat)."""
        if entry_ids:
            await self.redis.xclaim(
                QUEUE, GROUP, consumer, min_idle_time=0, message_ids=list(entry_ids), justid=True
            )

    async def queue_depth(self) -> int:
        """Runs queued or running (entries are deleted when their run finishes)."""
        return int(await self.redis.xlen(QUEUE))

    async def ack(self, entry_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(QUEUE, GROUP, entry_id)
            pipe.xdel(QUEUE, entry_id)
            await pipe.execute()


# Nothing on a thread that is not the tenant's own (ARGV[10], the owner hash KEYS[7]: {3}).
# Queued unless the queue is full ({0}): the record, the thread's indexes and the queue entry at
# once ({1}). With an idempotency key (ARGV[5] > 0): the run the key made, if it still exists,
# instead ({2, run id}). With a worker (ARGV[7]): the oldest undelivered entry is delivered to it
# ({1, entry id, run id}) — this run's, unless others wait — and this run, when it is first on its
# thread, starts: the worker's lease and the running record (ARGV[8]) ({1, entry id, run id, 1});
# with the thread's state key (STATE_KEY, defined before), whether the thread has saved state
# ({1, entry id, run id, 1, 0 or 1}).
_CREATE = """
if ARGV[10] ~= '' and redis.call('hget', KEYS[7], 'tenant') ~= ARGV[10] then
  return {3}
end
if tonumber(ARGV[5]) > 0 then
  local existing = redis.call('get', KEYS[5])
  if existing and redis.call('exists', ARGV[6] .. existing) == 1 then
    return {2, existing}
  end
end
if redis.call('xlen', KEYS[1]) >= tonumber(ARGV[1]) then
  return {0}
end
if tonumber(ARGV[5]) > 0 then
  redis.call('set', KEYS[5], ARGV[3], 'EX', ARGV[5])
end
redis.call('set', KEYS[2], ARGV[2])
redis.call('zadd', KEYS[3], ARGV[4], ARGV[3])
redis.call('zadd', KEYS[4], ARGV[4], ARGV[3])
local entry = redis.call('xadd', KEYS[1], '*', 'run_id', ARGV[3])
if ARGV[7] == '' then
  return {1}
end
-- pcall: with no consumer group yet (the worker still waits for Redis) the run stays queued.
local got = redis.pcall(
  'xreadgroup', 'GROUP', 'workers', ARGV[7], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
if not got or got.err then
  return {1}
end
local claimed = got[1][2][1]
if claimed[1] ~= entry or redis.call('zrange', KEYS[4], 0, 0)[1] ~= ARGV[3] then
  return {1, claimed[1], claimed[2][2]}
end
redis.call('set', KEYS[6], ARGV[7], 'PX', ARGV[9])
redis.call('set', KEYS[2], ARGV[8])
if STATE_KEY then
  return {1, entry, ARGV[3], 1, redis.call('exists', STATE_KEY)}
end
return {1, entry, ARGV[3], 1}
"""


_UNCLAIMED = f"local STATE_KEY = false\n{_CREATE}"


@functools.cache
def _claiming(claim: str, keys: int, args: int, state_key: bool) -> str:
    """`_CREATE` after the thread's claim (`OwnedBy`): the claim's keys follow the script's 7,
    its arguments the script's 10; then the thread's state key, when given (a started run is
    told whether it exists)."""
    key_list = ", ".join(f"KEYS[{8 + i}]" for i in range(keys))
    arg_list = ", ".join(f"ARGV[{11 + i}]" for i in range(args))
    state = f"KEYS[{8 + keys}]" if state_key else "false"
    return f"{claim}claim({{{key_list}}}, {{{arg_list}}})\nlocal STATE_KEY = {state}\n{_CREATE}"


# Nothing while another worker holds the lease ({0}). Otherwise acknowledged and released; then,
# unless the run was deleted or its record is already this one (a retry after a lost reply: {1}),
# its held checkpoint saves written (KEYS[7...]: document and latest pointer; after the events'
# arguments: document, expiry), its events (ARGV[9...]: id or '*', name, data, last) and its
# closing one appended and its record saved ({1, ids..., closing id}). An id that is not past the
# Stream's last (a worker that held the run before wrote later ones) becomes '*'.
_FINISH = (
    SAVE_CHECKPOINT_FUNCTION
    + """
local holder = redis.call('get', KEYS[6])
if holder and holder ~= ARGV[7] then
  return {0}
end
redis.call('xack', KEYS[5], 'workers', ARGV[6])
redis.call('xdel', KEYS[5], ARGV[6])
redis.call('del', KEYS[6])
local record = redis.call('get', KEYS[1])
if not record or record == ARGV[1] then
  return {1}
end
local saves = 9 + 4 * tonumber(ARGV[8])
for k = 7, #KEYS, 2 do
  save_checkpoint(KEYS[k], KEYS[k + 1], ARGV[saves + k - 7], ARGV[saves + k - 6])
end
local written = {1}
for i = 9, 8 + 4 * tonumber(ARGV[8]), 4 do
  local fields = {'e', ARGV[i + 1], 'd', ARGV[i + 2]}
  if ARGV[i + 3] == '1' then
    fields[5], fields[6] = 'last', '1'
  end
  local id = redis.pcall('xadd', KEYS[2], 'MAXLEN', '~', ARGV[5], ARGV[i], unpack(fields))
  if type(id) == 'table' then
    id = redis.call('xadd', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', unpack(fields))
  end
  written[#written + 1] = id
end
written[#written + 1] = redis.call(
  'xadd', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'e', 'end', 'd', ARGV[2], 'last', '1')
redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[4])
redis.call('zrem', KEYS[3], ARGV[3])
redis.call('expire', KEYS[2], ARGV[4])
redis.call('expire', KEYS[4], ARGV[4])
return written
"""
)

# Saved as started only at the head of its thread's unfinished runs.
_START = """
local cancel = redis.call('get', KEYS[3])
if cancel then
  return {0, cancel}
end
local head = redis.call('zrange', KEYS[1], 0, 0)[1]
if head and head ~= ARGV[1] then
  return {0}
end
redis.call('set', KEYS[2], ARGV[2])
return {1}
"""

# Renewed if still ours, or taken back if it lapsed and nobody else took it.
_RENEW = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# Only while the entry is still pending for this worker and no other worker holds the lease.
_HAND_BACK = """
local pending = redis.call('xpending', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #pending == 0 or pending[1][2] ~= ARGV[3] then
  return 0
end
local holder = redis.call('get', KEYS[2])
if holder and holder ~= ARGV[3] then
  return 0
end
redis.call('del', KEYS[2])
redis.call('xack', KEYS[1], ARGV[1], ARGV[2])
redis.call('xdel', KEYS[1], ARGV[2])
redis.call('xadd', KEYS[1], '*', 'run_id', ARGV[4])
return 1
"""

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
