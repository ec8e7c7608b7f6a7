"""The worker: takes runs from the Redis queue and executes them, writing every event to the run's
Stream (`switchboard.runs`).

A worker holds a lease on each run it executes and renews it (and the queue entry's idle time)
every third of a lease; a worker that dies stops renewing, and after one lease another worker
reclaims the entry (`XAUTOCLAIM`), takes the lease and executes the run again — the executor
resumes it from its last checkpoint. A worker that finds its lease taken stops its copy of the run
at once, so a run never executes in two places at the same time. Runs on one thread execute one
at a time, in the order they were created. Cancellation is a key in Redis that the worker polls
for its runs; the run's task is cancelled, which stops the node and its backend request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from switchboard import logs, metrics
from switchboard.event_bus import EventHub, EventWriter
from switchboard.runs import (
    FRESH_THREADS,
    HELD_SAVES,
    CancelAction,
    CheckpointSave,
    OwnedBy,
    RunRecord,
    RunStatus,
    RunStore,
    StoredEvent,
    assistant_uuid,
    encode,
)
from switchboard.settings import RuntimeSettings
from switchboard.webhooks import WebhookRefused, check_webhook

log = logging.getLogger(__name__)

# How often a worker looks for cancellation of its runs (the delay of a cancel).
_CANCEL_POLL_S = 0.1
# How often a run behind another on its thread checks whether it is its turn.
_TURN_POLL_S = 0.02
# A run whose workers died this many times is ended with an error instead of started again.
_MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Emit:
    """An event of the run, for its stream."""

    name: str
    data: Any


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the run ended; the executor's last item."""

    status: RunStatus
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


# Runs a record: its events, then its outcome. `attempt` > 1: a reclaimed run, to be resumed.
Executor = Callable[[RunRecord], AsyncIterator[Emit | Outcome]]
# Called when a run was cancelled with `rollback`, after it stopped: undo what it wrote.
Rollback = Callable[[RunRecord], Awaitable[None]]
# Called when a stateless run has finished: forget its thread.
ForgetThread = Callable[[RunRecord], Awaitable[None]]


class _Cancelled(Exception):
    def __init__(self, action: CancelAction) -> None:
        self.action = action


@dataclass(slots=True)
class _Running:
    entry_id: str
    task: asyncio.Task[None]
    cancel: CancelAction | None = None
    lost: bool = False
    ended: bool = False  # its outcome is known: a cancel now would only lose it
    executing: bool = False  # past its turn on the thread: its graph is running
    hand_back: bool = False  # stopped by a draining worker: queued again for another
    fresh: bool = False  # started by `submit` on a thread with no saved state


class _HandBack(Exception):
    """A run whose turn had not come when its worker began to drain: back to the queue."""


def worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        store: RunStore,
        execute: Executor,
        rollback: Rollback,
        forget_thread: ForgetThread,
        settings: RuntimeSettings,
        name: str | None = None,
        hub: EventHub | None = None,
        hold_saves: bool = False,
    ) -> None:
        """`hub`: this process's event hub, when the worker runs inside an API process — the
        runs' events then reach its followers without a read from Redis. `hold_saves`: the
        checkpoints of LangGraph runs are saved only at their end (durability `exit`), so they
        can go with it (`HELD_SAVES`)."""
        self._store = store
        self._hold_saves = hold_saves
        self._execute = execute
        self._rollback = rollback
        self._forget_thread = forget_thread
        self._settings = settings
        self.name = name or worker_name()
        self._running: dict[str, _Running] = {}
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._webhooks: set[asyncio.Task[None]] = set()
        self._hub = hub
        self._writer = EventWriter(store, hub, settings.events_write_delay_ms)
        self._reading: asyncio.Task[None] | None = None
        self._reclaiming: asyncio.Task[None] | None = None
        self.draining = False

    async def submit(
        self,
        record: RunRecord,
        idempotency_key: str | None = None,
        owner: OwnedBy | None = None,
    ) -> RunRecord:
        """Queue a run made in this process (`RunStore.create`). With a slot free here, the same
        round trip hands this worker the oldest queued run — normally this one, which starts at
        once, without the queue read, lease and start of a run taken from the queue."""
        if self._slots.locked() or self.draining:
            created, _ = await self._store.create(record, idempotency_key, owner=owner)
            return created
        await self._slots.acquire()
        try:
            created, claim = await self._store.create(record, idempotency_key, self.name, owner)
        except BaseException:
            self._slots.release()
            raise
        if claim is None:
            self._slots.release()
        else:
            self._start(claim.entry_id, claim.run_id, claim.record, claim.fresh)
        return created

    async def run(self) -> None:
        """Execute runs until cancelled; then hand the runs in hand back to the queue, where
        another worker takes them at once and resumes them from their last checkpoint."""
        await self._ensure_group()
        self._reclaiming = asyncio.create_task(self._reclaim(), name="worker reclaim")
        chores = [
            asyncio.create_task(self._heartbeat(), name="worker heartbeat"),
            asyncio.create_task(self._watch_cancels(), name="worker cancels"),
            self._reclaiming,
        ]
        self._reading = asyncio.create_task(self._read(), name="worker reads")
        try:
            await asyncio.gather(self._reading, return_exceptions=True)
            await asyncio.Event().wait()  # drained: the runs in hand finish, until cancelled
        finally:
            self._reading.cancel()
            for chore in chores:
                chore.cancel()
            running = list(self._running.values())
            for run in running:
                run.hand_back = not run.ended
                run.task.cancel()
            await asyncio.gather(
                self._reading, *chores, *(r.task for r in running), return_exceptions=True
            )

    async def _read(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                taken = await self._store.next_runs(self.name, 1)
            except Exception:
                self._slots.release()
                log.exception("worker %s cannot read the queue; retrying", self.name)
                await asyncio.sleep(1)
                continue
            if not taken:
                self._slots.release()
                continue
            for entry_id, run_id in taken:
                self._start(entry_id, run_id)

    def drain(self) -> None:
        """Stop taking runs (from the queue, from `submit`, by reclaiming); hand back at once
        the runs in hand whose turn has not come; let the executing ones finish (`drained`)."""
        if self.draining:
            return
        self.draining = True
        log.info("worker %s is draining: %d runs in hand", self.name, len(self._running))
        for task in (self._reading, self._reclaiming):
            if task is not None:
                task.cancel()
        for run in self._running.values():
            # Seen by the run's task before its turn comes (not a cancellation: a task cancelled
            # before it first runs would skip its clean-up).
            if not run.executing and not run.ended:
                run.hand_back = True

    async def drained(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the runs in hand to end; whether they all did."""
        deadline = time.monotonic() + timeout
        while self._running:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _ensure_group(self) -> None:
        """The queue's consumer group; Redis may not be up yet (the service starts anyway)."""
        while True:
            try:
                await self._store.ensure_group()
                return
            except Exception as exc:
                log.warning("worker %s waits for Redis: %s", self.name, exc)
                await asyncio.sleep(1)

    def _start(
        self, entry_id: str, run_id: str, started: RunRecord | None = None, fresh: bool = False
    ) -> None:
        """Execute the run in a slot already taken; `started`: its record, when `submit` has
        started it (lease and all), else it is taken here; `fresh`: its thread had no saved
        state then."""
        if started is not None:
            # Its events reach this process's followers from the first one: the request that
            # made the run follows it at once, fed here without a wake-up read from Redis.
            self._writer.open(run_id, fresh=True)
        task = asyncio.create_task(self._guarded(entry_id, run_id, started), name=f"run {run_id}")
        self._running[run_id] = _Running(entry_id, task, fresh=fresh)

    async def _guarded(self, entry_id: str, run_id: str, started: RunRecord | None) -> None:
        try:
            await self._own(entry_id, run_id, started)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker %s failed run %s; it will be reclaimed", self.name, run_id)
        finally:
            self._running.pop(run_id, None)
            self._slots.release()

    async def _own(self, entry_id: str, run_id: str, started: RunRecord | None) -> None:
        record: RunRecord | None = started
        cancel: CancelAction | None = None  # a run started by `submit` is brand new
        if started is None:
            try:
                acquired, record, cancel = await self._store.take(run_id, self.name)
            except (ValueError, TypeError):  # a record no version of this code can read
                log.exception("worker %s drops run %s: its record is unreadable", self.name, run_id)
                await self._store.ack(entry_id)
                return
            if not acquired:
                return  # another worker holds it: it is alive, so the run is in hand
        settled = False  # acknowledged and released when it finished
        try:
            if record is None or record.finished:
                await self._store.ack(entry_id)  # expired, or finished just before a crash
                return
            if self._running[run_id].hand_back:
                return  # taken as the worker began to drain
            logs.run_context(run_id, record.thread_id, record.trace_id)
            if started is None:  # else opened by `_start`
                self._writer.open(run_id, fresh=record.attempt == 0)
            self._running[run_id].cancel = cancel
            try:
                settled = await self._execute_run(entry_id, record, started is not None)
            except _HandBack:
                return
            if not settled and not self._running[run_id].lost:  # else it is another worker's
                await self._store.ack(entry_id)
        finally:
            self._writer.close(run_id)
            running = self._running.get(run_id)
            if not settled and (running is None or not running.lost):
                if running is not None and running.hand_back:
                    await self._hand_back(entry_id, run_id)
                else:
                    await self._store.release(run_id, self.name)

    async def _hand_back(self, entry_id: str, run_id: str) -> None:
        try:
            if await self._store.hand_back(entry_id, run_id, self.name):
                log.info("worker %s handed run %s back to the queue", self.name, run_id)
        except Exception as exc:  # its lease lapses and another worker reclaims it
            log.warning("worker %s could not hand back run %s: %s", self.name, run_id, exc)

    async def _execute_run(self, entry_id: str, record: RunRecord, started: bool) -> bool:
        """Execute the run and record its end; whether that also acknowledged its queue entry
        and released its lease (`RunStore.finish`)."""
        running = self._running[record.run_id]
        outcome = Outcome("interrupted")
        # Not a chat run's: its `end` reaches the client before the run finishes, and the
        # client's next look at the thread must find the turn saved. Nor a stateless run's:
        # its thread is forgotten when it ends. (This task is the run's alone.)
        held: list[CheckpointSave] | None = None
        if self._hold_saves and record.kind == "langgraph" and not record.stateless:
            held = []
        HELD_SAVES.set(held)
        FRESH_THREADS.set({record.thread_id} if running.fresh else None)
        if record.attempt >= _MAX_ATTEMPTS and running.cancel is None:
            # Started that many times and never finished: it is what kills its workers.
            error = {
                "message": f"the run was started {record.attempt} times and never finished",
                "type": "server_error",
                "code": "run_abandoned",
            }
            self._writer.append(record.run_id, "error", error)
            outcome = Outcome("error", error=error)
        elif running.cancel is None:
            try:
                if not started:
                    await self._wait_turn(record)
            except asyncio.CancelledError:
                if running.cancel is None:
                    raise  # the worker is stopping, or lost the run
            else:
                if running.cancel is None:
                    running.executing = True
                    began = time.monotonic()
                    outcome = await self._execute_events(record)
                    _measure(record, outcome, time.monotonic() - began)
        if running.lost:
            return False  # another worker has the run now; it writes the rest
        running.ended = True
        record.status, record.output, record.error = outcome.status, outcome.output, outcome.error
        if running.cancel == "rollback":
            await self._rollback(record)
            if record.stateless:
                await self._forget_thread(record)
            self._writer.append(record.run_id, "end", _summary(record), last=True)
            await self._writer.drain(record.run_id)
            await self._store.delete(record)
            return False
        if record.stateless:
            await self._forget_thread(record)
        # The run's events not written yet go with its end, in one round trip.
        rest = await self._writer.take_rest(record.run_id)
        summary = _summary(record)
        encoded = encode(summary)
        written = await self._store.finish(
            record,
            encoded,
            entry_id,
            self.name,
            [(e.name, e.encoded, e.last, e.entry_id) for e in rest],
            held or (),
        )
        if written is None:
            log.warning("worker %s lost run %s to another worker", self.name, record.run_id)
            running.lost = True
            with contextlib.suppress(Exception):  # as `drain` would have: best effort
                await self._store.append_many(
                    [(record.run_id, e.name, e.encoded, e.last, e.entry_id) for e in rest]
                )
            return False
        if written:  # the ids of `rest`, then of the closing event
            for event, event_id in zip(rest, written, strict=False):
                if event.entry_id is None:  # not handed to followers yet: it had no id
                    self._writer.published(
                        record.run_id,
                        StoredEvent(event_id, event.name, event.data, event.encoded, event.last),
                    )
            closing = StoredEvent(written[-1], "end", summary, encoded, True)
            self._writer.published(record.run_id, closing)
        if record.webhook:
            task = asyncio.create_task(self._call_webhook(record), name=f"webhook {record.run_id}")
            self._webhooks.add(task)
            task.add_done_callback(self._webhooks.discard)
        return True

    async def _wait_turn(self, record: RunRecord) -> None:
        """Start the run once it is first among its thread's unfinished runs (they execute one
        at a time, oldest first). Its start time is when its turn came: checkpoints after it
        are this run's, not the one before it."""
        record.status = "running"
        record.attempt += 1
        first_start = record.started_at is None
        running = self._running[record.run_id]
        while True:
            if running.hand_back:
                raise _HandBack
            if first_start:
                record.started_at = time.time()
            started, cancel = await self._store.start(record)
            if cancel is not None:  # cancelled while it waited: it must not start
                running.cancel = cancel
                return
            if started:
                return
            await asyncio.sleep(_TURN_POLL_S)

    async def _execute_events(self, record: RunRecord) -> Outcome:
        outcome = Outcome("error", error={"message": "the run ended without an outcome"})
        try:
            async with asyncio.timeout(self._settings.run_timeout_s):
                async for item in self._execute(record):
                    if isinstance(item, Outcome):
                        outcome = item
                    else:
                        self._writer.append(record.run_id, item.name, item.data)
        except TimeoutError:
            error = {
                "message": f"the run exceeded its time budget of {self._settings.run_timeout_s} s",
                "type": "server_error",
                "code": "run_timeout",
            }
            self._writer.append(record.run_id, "error", error)
            return Outcome("timeout", error=error)
        except asyncio.CancelledError:
            running = self._running.get(record.run_id)
            if running is None or (running.cancel is None and not running.lost):
                raise  # the worker is stopping: the run is reclaimed elsewhere
            if not running.lost and record.kind == "chat":
                # A chat stream ends with `end` or `error`; LangGraph's just closes.
                self._writer.append(
                    record.run_id, "error", _interrupted(running.cancel or "interrupt")
                )
            return Outcome("interrupted")
        return outcome

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._settings.lease_ms / 3000)
            if not self._running:
                continue
            try:
                lost = await self._store.renew(list(self._running), self.name)
                await self._store.touch(self.name, [r.entry_id for r in self._running.values()])
            except Exception:
                log.exception("worker %s could not renew its leases", self.name)
                continue
            for run_id in lost:
                running = self._running.get(run_id)
                if running is not None:
                    log.warning("worker %s lost run %s to another worker", self.name, run_id)
                    running.lost = True
                    running.task.cancel()

    async def _watch_cancels(self) -> None:
        while True:
            await asyncio.sleep(_CANCEL_POLL_S)
            waiting = [
                r for r, run in self._running.items() if run.cancel is None and not run.ended
            ]
            try:
                requests = await self._store.cancel_requests(waiting)
            except Exception:
                log.exception("worker %s could not read cancellations", self.name)
                continue
            for run_id, action in requests.items():
                running = self._running.get(run_id)
                if running is not None:
                    running.cancel = action
                    running.task.cancel()

    async def _reclaim(self) -> None:
        while True:
            await asyncio.sleep(self._settings.lease_ms / 2000)
            try:
                claimed = await self._store.reclaim(self.name, self._settings.concurrency)
            except Exception:
                log.exception("worker %s could not reclaim runs", self.name)
                continue
            for entry_id, run_id in claimed:
                if run_id in self._running:
                    continue
                await self._slots.acquire()
                log.warning("worker %s reclaimed run %s", self.name, run_id)
                self._start(entry_id, run_id)

    async def _call_webhook(self, record: RunRecord) -> None:
        """POST the finished run to its webhook, signed, retried with backoff on failure."""
        assert record.webhook is not None
        body = json.dumps(public_run(record), separators=(",", ":")).encode()
        headers = {"content-type": "application/json"}
        secret = self._settings.webhook_secret
        if secret is not None:
            digest = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256)
            headers["X-Switchboard-Signature"] = f"sha256={digest.hexdigest()}"
        async with httpx.AsyncClient(timeout=10) as client:
            for attempt in range(self._settings.webhook_attempts):
                try:
                    await check_webhook(record.webhook, self._settings.webhook_private_hosts)
                except WebhookRefused as exc:
                    log.warning("webhook for run %s refused: %s", record.run_id, exc.message)
                    return
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.post(record.webhook, content=body, headers=headers)
                    if response.status_code < 300:
                        return
                    if 400 <= response.status_code < 500 and response.status_code != 429:
                        break  # the receiver refuses it: retrying will not help
                await asyncio.sleep(0.5 * 2**attempt)
        log.warning("webhook for run %s failed: %s", record.run_id, record.webhook)


def _measure(record: RunRecord, outcome: Outcome, seconds: float) -> None:
    route = str((outcome.output or {}).get("route") or "none")
    metrics.RUNS.labels(record.assistant_id, route, outcome.status).inc()
    metrics.RUN_DURATION.labels(record.assistant_id, route).observe(seconds)


def _summary(record: RunRecord) -> dict[str, Any]:
    """The closing event's data: how the run ended (followers that wait need no other read)."""
    return {"status": record.status, "output": record.output, "error": record.error}


def _interrupted(action: CancelAction) -> dict[str, Any]:
    return {
        "message": f"the run was cancelled ({action})",
        "type": "cancelled",
        "code": "run_cancelled",
    }


def public_run(record: RunRecord) -> dict[str, Any]:
    """A run as LangGraph's server shows it."""
    created = _iso(record.created_at)
    return {
        "run_id": record.run_id,
        "thread_id": record.thread_id,
        "assistant_id": assistant_uuid(record.assistant_id),
        "created_at": created,
        "updated_at": _iso(record.updated_at),
        "status": record.status,
        "metadata": record.metadata,
        "kwargs": {"input": record.input, "stream_mode": record.stream_modes},
        "multitask_strategy": record.multitask_strategy,
    }


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + (
        f".{int(timestamp % 1 * 1e6):06d}+00:00"
    )
