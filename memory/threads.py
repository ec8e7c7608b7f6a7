"""Threads: who owns each one, and LangGraph's Redis checkpointer with Redis failures made clear.

A thread's conversation lives in the checkpointer. Beside it, `ThreadRegistry` keeps one small
hash per thread (tenant, user, workflow) and one set per user of their threads: so that another
tenant's thread id is a 404, and so that forgetting a user can find their threads. Both expire
with the thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.redis.aio import AsyncRedisSaver
from langgraph.checkpoint.redis.jsonplus_redis import JsonPlusRedisSerializer
from langgraph.checkpoint.redis.util import to_storage_safe_id, to_storage_safe_str
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redisvl.exceptions import RedisVLError
from ulid import ULID

from switchboard import metrics
from switchboard.errors import SwitchboardError
from switchboard.retrying import waiting_out
from switchboard.runs import (
    FRESH_THREADS,
    HELD_SAVES,
    SAVE_CHECKPOINT_FUNCTION,
    CheckpointSave,
    OwnedBy,
)

REDIS_ERRORS = (RedisError, RedisVLError, OSError)
# How long saving a checkpoint waits for a Redis that stopped answering.
_SAVE_WAIT_S = 10.0


class MemoryUnavailable(SwitchboardError):
    """Redis, where conversations and memories live, cannot be reached."""

    status = 503
    type = "store_error"
    code = "memory_unavailable"


def unavailable(exc: BaseException) -> MemoryUnavailable:
    return MemoryUnavailable(
        f"conversation memory (Redis) is unavailable: {type(exc).__name__}: {exc}"
    )


# JSON's own leaf types: nothing in them needs a type marker on the way into or out of Redis.
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


class FastRedisSerializer(JsonPlusRedisSerializer):
    """The Redis saver's serializer with a fast path for plain JSON values.

    Upstream walks the whole checkpoint in Python before encoding it, running half a dozen
    isinstance checks (and two imports) on every string of every message: at 300 turns that
    walk was most of a turn's checkpointer cost (bench/memory.py). Plain scalars, dicts and lists
    come out of it unchanged, so they skip it here; anything else (tuples, sets, dataclasses,
    bytes, Send, Interrupt, subclasses) still takes upstream's path.
    """

    def _preprocess_redis_json(
        self, obj: Any, *, encode_bytes: Callable[[bytes], Any] | None = None
    ) -> Any:
        kind = type(obj)
        if kind in _JSON_SCALARS:
            return obj
        if kind is list:
            return [self._preprocess_redis_json(v, encode_bytes=encode_bytes) for v in obj]
        if kind is dict:
            return {
                k: self._preprocess_redis_json(v, encode_bytes=encode_bytes) for k, v in obj.items()
            }
        return super()._preprocess_redis_json(obj, encode_bytes=encode_bytes)


class Checkpointer(AsyncRedisSaver):
    """`AsyncRedisSaver` whose Redis failures surface as `MemoryUnavailable` (a clear 503 for
    the turn) rather than an internal error, with a faster walk over plain JSON values."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.serde = FastRedisSerializer()

    def _recursive_deserialize(self, obj: Any) -> Any:
        # Dicts keep upstream's checks (bytes, Send and LangChain constructor markers).
        kind = type(obj)
        if kind in _JSON_SCALARS:
            return obj
        if kind is list:
            return [self._recursive_deserialize(v) for v in obj]
        return super()._recursive_deserialize(obj)

    def state_key(self, thread_id: str) -> str:
        """The thread's pointer to its latest checkpoint: it exists once the thread has state."""
        return self._make_redis_checkpoint_latest_key(thread_id, "")

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        configurable = config.get("configurable", {})
        fresh = FRESH_THREADS.get()
        if (
            fresh
            and configurable.get("thread_id") in fresh
            and not configurable.get("checkpoint_ns")
            and not configurable.get("checkpoint_id")
        ):
            fresh.discard(configurable["thread_id"])  # once: what the run saves is read back
            return None
        try:
            with metrics.timed("redis", "checkpoint_load"):
                return await super().aget_tuple(config)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        stream_mode: str = "values",
    ) -> RunnableConfig:
        fresh = FRESH_THREADS.get()
        if fresh:
            fresh.discard(config["configurable"]["thread_id"])
        # Cluster mode keeps upstream's writes: their keys may live on different nodes.
        prepared = None if self.cluster_mode else self._save(config, checkpoint, metadata)
        held = HELD_SAVES.get()
        if prepared is not None and held is not None:
            held.append(prepared[0])  # written with the run's end (see `HELD_SAVES`)
            return prepared[1]
        upstream_put = super().aput

        async def save() -> RunnableConfig:
            with metrics.timed("redis", "checkpoint_save"):
                if prepared is None:
                    return await upstream_put(
                        config, checkpoint, metadata, new_versions, stream_mode
                    )
                await self._put(prepared[0])
                return prepared[1]

        # A run that ends while Redis is briefly away (a restart, a failover) waits for it to
        # come back rather than lose its answer; the writes are idempotent (the same keys).
        try:
            return await waiting_out(save, REDIS_ERRORS, _SAVE_WAIT_S)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc

    def _save(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> tuple[CheckpointSave, RunnableConfig]:
        """What upstream's `aput` writes, as one save: the same document, latest pointer and
        expiry (`tests/memory/test_checkpointer.py` compares the two); and the config `aput`
        returns. Written by one script (`_put`, or with a run's end) instead of upstream's three
        round trips: the checkpoint save is on every run's path, where each round trip shows."""
        configurable = dict(config["configurable"])
        run_id = configurable.pop("run_id", metadata.get("run_id"))
        thread_id = configurable.pop("thread_id")
        checkpoint_ns = configurable.pop("checkpoint_ns")
        config_checkpoint_id = configurable.pop("checkpoint_id", None)
        thread_ts = configurable.pop("thread_ts", "")
        checkpoint_id = config_checkpoint_id or thread_ts or checkpoint.get("id", "")
        parent_checkpoint_id = None
        if (
            checkpoint.get("id")
            and config_checkpoint_id
            and checkpoint.get("id") != config_checkpoint_id
        ):
            parent_checkpoint_id = config_checkpoint_id
            checkpoint_id = checkpoint["id"]
        try:
            checkpoint_ts: float = ULID.from_str(checkpoint_id).timestamp
        except Exception:  # not a ULID (as upstream: now, in milliseconds)
            checkpoint_ts = time.time() * 1000
        document: dict[str, Any] = {
            "thread_id": to_storage_safe_id(thread_id),
            "run_id": to_storage_safe_id(run_id) if run_id else "",
            "checkpoint_ns": to_storage_safe_str(checkpoint_ns),
            "checkpoint_id": to_storage_safe_id(checkpoint_id),
            "parent_checkpoint_id": (
                to_storage_safe_id(parent_checkpoint_id) if parent_checkpoint_id else ""
            ),
            "checkpoint_ts": checkpoint_ts,
            "checkpoint": self._dump_checkpoint(checkpoint.copy()),
            "metadata": self._dump_metadata(metadata),
            "has_writes": False,
        }
        if "source" in metadata and "step" in metadata:  # top-level, for `alist`'s filters
            document["source"] = metadata["source"]
            document["step"] = metadata["step"]
        ttl = self.ttl_config.get("default_ttl") if self.ttl_config else None
        save = CheckpointSave(
            key=self._make_redis_checkpoint_key_cached(thread_id, checkpoint_ns, checkpoint_id),
            latest_key=self._make_redis_checkpoint_latest_key(thread_id, checkpoint_ns),
            document=orjson.dumps(document),
            ttl_s=int(ttl * 60) if ttl else 0,
        )
        saved: RunnableConfig = {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint_id,
            }
        }
        return save, saved

    async def _put(self, save: CheckpointSave) -> None:
        await self._redis.eval(
            _PUT_CHECKPOINT, 2, save.key, save.latest_key, save.document, save.ttl_s
        )

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Any,
        task_id: str,
        task_path: str = "",
    ) -> None:
        try:
            held = HELD_SAVES.get()
            if held:  # the writes belong to a checkpoint: it goes first, as upstream's would
                for save in held:
                    await self._put(save)
                held.clear()
            await super().aput_writes(config, writes, task_id, task_path)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc


# One checkpoint saved (`Checkpointer._put`).
_PUT_CHECKPOINT = (
    SAVE_CHECKPOINT_FUNCTION
    + """
save_checkpoint(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return 1
"""
)


@dataclass(frozen=True, slots=True)
class ThreadOwner:
    thread_id: str
    tenant: str
    user: str | None
    workflow: str
    created_at: float
    metadata: dict[str, Any] = field(default_factory=dict)


class ThreadRegistry:
    def __init__(
        self,
        redis: Redis,
        ttl_minutes: int | None,
        state_key: Callable[[str], str] | None = None,
    ) -> None:
        """`state_key`: a thread's pointer to its saved state (`Checkpointer.state_key`), for
        the script that queues a run to report whether it exists (`OwnedBy.state_key`)."""
        self._redis = redis
        self._ttl = ttl_minutes * 60 if ttl_minutes else None
        self._state_key = state_key

    @staticmethod
    def _key(thread_id: str) -> str:
        return f"switchboard:thread:{thread_id}"

    @staticmethod
    def _user_key(tenant: str, user: str) -> str:
        return f"switchboard:user-threads:{tenant}:{user}"

    @staticmethod
    def _tenant_key(tenant: str) -> str:
        return f"switchboard:tenant-threads:{tenant}"

    async def create(
        self, thread_id: str, tenant: str, metadata: dict[str, Any]
    ) -> tuple[ThreadOwner, bool]:
        """A thread made through the LangGraph API (no turn yet); (owner, whether it is new)."""
        key = self._key(thread_id)
        try:
            created = await self._redis.hsetnx(key, "tenant", tenant)
            if created:
                fields: dict[Any, Any] = {
                    "created_at": str(time.time()),
                    "metadata": json.dumps(metadata),
                }
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.hset(key, mapping=fields)
                    if self._ttl:
                        pipe.expire(key, self._ttl)
                    pipe.zadd(self._tenant_key(tenant), {thread_id: time.time()})
                    await pipe.execute()
            raw = await self._redis.hgetall(key)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc
        return _owner(thread_id, raw), bool(created)

    async def search(self, tenant: str) -> list[ThreadOwner]:
        """The tenant's threads, newest first (those that have not expired)."""
        try:
            ids = [_text(i) for i in await self._redis.zrevrange(self._tenant_key(tenant), 0, -1)]
            async with self._redis.pipeline(transaction=False) as pipe:
                for thread_id in ids:
                    pipe.hgetall(self._key(thread_id))
                raws = await pipe.execute()
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc
        return [_owner(t, raw) for t, raw in zip(ids, raws, strict=True) if raw]

    async def get(self, thread_id: str) -> ThreadOwner | None:
        try:
            raw = await self._redis.hgetall(self._key(thread_id))
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc
        return _owner(thread_id, raw) if raw else None

    async def claim(
        self, thread_id: str, tenant: str, user: str | None, workflow: str, create: bool = True
    ) -> ThreadOwner | None:
        """Record a turn on the thread, in one round trip: the first turn makes the tenant (and
        user) its owner; later turns of the owner refresh its expiry; another tenant's thread is
        left alone. Returns the owner, which the caller compares (None: no such thread and
        `create` is False)."""
        keys, args = self._claim_keys_args(thread_id, tenant, user, workflow, create)
        try:
            raw = await self._redis.eval(_CLAIM, len(keys), *keys, *args)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc
        if not raw:
            return None
        return _owner(thread_id, dict(zip(raw[::2], raw[1::2], strict=True)))

    def owned_by(
        self, thread_id: str, tenant: str, user: str | None, workflow: str, create: bool = True
    ) -> OwnedBy:
        """The claim of `claim`, for the script that queues the turn's run to make first and
        check (one script for both: `RunStore.create`)."""
        keys, args = self._claim_keys_args(thread_id, tenant, user, workflow, create)
        state_key = self._state_key(thread_id) if self._state_key else None
        return OwnedBy(self._key(thread_id), tenant, _CLAIM_FUNCTION, keys, args, state_key)

    def _claim_keys_args(
        self, thread_id: str, tenant: str, user: str | None, workflow: str, create: bool
    ) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        keys = (
            self._key(thread_id),
            self._tenant_key(tenant),
            self._user_key(tenant, user or "-"),
        )
        args = (
            tenant,
            user or "",
            workflow,
            str(time.time()),
            self._ttl or 0,
            1 if create else 0,
            thread_id,
        )
        return keys, args

    async def threads_of(self, tenant: str, user: str) -> list[str]:
        try:
            members = await self._redis.smembers(self._user_key(tenant, user))
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc
        return sorted(_text(m) for m in members)

    async def remove(self, owner: ThreadOwner) -> None:
        try:
            await self._redis.delete(self._key(owner.thread_id))
            await self._redis.zrem(self._tenant_key(owner.tenant), owner.thread_id)
            if owner.user:
                await self._redis.srem(self._user_key(owner.tenant, owner.user), owner.thread_id)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc


# The owner's fields set only while the thread is new; the owner's later turns refresh its expiry
# and its place in the owner's lists (the tenant's, for search; the user's, for forgetting).
# As a Lua function, so that the script that queues a turn's run can claim its thread first
# (`OwnedBy`); its parameters shadow the script's own KEYS and ARGV.
_CLAIM_FUNCTION = """
local function claim(KEYS, ARGV)
local owner = redis.call('hget', KEYS[1], 'tenant')
if not owner then
  if ARGV[6] == '0' then
    return false
  end
  redis.call('hset', KEYS[1], 'tenant', ARGV[1], 'created_at', ARGV[4])
  owner = ARGV[1]
end
if owner == ARGV[1] then
  redis.call('hsetnx', KEYS[1], 'user', ARGV[2])
  redis.call('hsetnx', KEYS[1], 'workflow', ARGV[3])
  redis.call('hsetnx', KEYS[1], 'created_at', ARGV[4])
  if tonumber(ARGV[5]) > 0 then
    redis.call('expire', KEYS[1], ARGV[5])
  end
  redis.call('zadd', KEYS[2], 'NX', ARGV[4], ARGV[7])
  if ARGV[2] ~= '' and redis.call('hget', KEYS[1], 'user') == ARGV[2] then
    redis.call('sadd', KEYS[3], ARGV[7])
    if tonumber(ARGV[5]) > 0 then
      redis.call('expire', KEYS[3], ARGV[5])
    end
  end
end
return redis.call('hgetall', KEYS[1])
end
"""
_CLAIM = _CLAIM_FUNCTION + "return claim(KEYS, ARGV)\n"


def _owner(thread_id: str, raw: dict[Any, Any]) -> ThreadOwner:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    return ThreadOwner(
        thread_id=thread_id,
        tenant=fields["tenant"],
        user=fields.get("user") or None,
        workflow=fields.get("workflow", ""),
        created_at=float(fields.get("created_at", 0)),
        metadata=json.loads(fields.get("metadata", "{}")),
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def count_checkpoints(saver: AsyncRedisSaver, thread_id: str) -> int:
    return sum([1 async for _ in saver.alist({"configurable": {"thread_id": thread_id}})])
