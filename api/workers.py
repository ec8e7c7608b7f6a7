"""Workers in this application: the one inside `switchboard serve` (on by default) and the
`switchboard worker` process, both executing runs from the Redis queue with this process's
services (`api.executor`)."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import FrameType
from typing import Any

from api.executor import make_executor, written_during
from api.services import Services, open_services
from switchboard.runs import RunRecord
from switchboard.settings import Settings
from switchboard.worker import Worker

log = logging.getLogger(__name__)


def make_worker(services: Services, name: str | None = None, in_api: bool = False) -> Worker:
    """`in_api`: the worker runs inside an API process, whose followers it feeds directly."""

    async def rollback(record: RunRecord) -> None:
        await rollback_thread(services, record)

    async def forget_thread(record: RunRecord) -> None:
        await services.memory.checkpointer.adelete_thread(record.thread_id)
        owner = await services.memory.threads.get(record.thread_id)
        if owner is not None:
            await services.memory.threads.remove(owner)

    return Worker(
        services.runs,
        make_executor(services),
        rollback,
        forget_thread,
        services.settings.runtime,
        name,
        hub=services.events if in_api else None,
        hold_saves=services.settings.redis.durability == "exit",
    )


@asynccontextmanager
async def worker_running(services: Services) -> AsyncIterator[Worker | None]:
    """A worker in this process while the block runs, when the settings ask for one. At the
    end (after uvicorn has let open streams finish), the runs still executing get what is left
    of the grace period; then the rest are handed back to the queue."""
    if not services.settings.runtime.worker:
        yield None
        return
    worker = make_worker(services, in_api=True)
    task = asyncio.create_task(worker.run(), name=f"worker {worker.name}")
    services.worker = worker
    try:
        yield worker
    finally:
        services.worker = None
        start_draining(services)
        await worker.drained(_grace_left(services))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def start_draining(services: Services) -> None:
    """SIGTERM (or shutdown): `/readyz` says so (the load balancer stops sending requests)
    and the worker stops taking runs and hands back those whose turn has not come."""
    if services.draining_since is None:
        services.draining_since = time.monotonic()
        log.info("draining: finishing open streams and executing runs, taking no new ones")
    if services.worker is not None:
        services.worker.drain()


def _grace_left(services: Services) -> float:
    since = services.draining_since or time.monotonic()
    return max(0.0, services.settings.server.shutdown_grace_s - (time.monotonic() - since))


@contextmanager
def draining_on_sigterm(services: Services) -> Iterator[None]:
    """Start draining the moment SIGTERM arrives, then let the handler before ours (uvicorn's:
    stop accepting, wait for open connections) do its part. Only in the main thread, where
    signals are delivered (the test harness runs apps in other threads)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(start_draining, services)
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous)


async def rollback_thread(services: Services, record: RunRecord) -> None:
    """Undo what a cancelled run wrote to its thread: its state becomes what it was before the
    run (a new head checkpoint copied from the last one written before it), or, when the run was
    the thread's first, the thread has no checkpoint again."""
    graph = services.workflows[record.assistant_id].graph
    config: Any = {"configurable": {"thread_id": record.thread_id}}
    wrote = False
    async for snapshot in graph.aget_state_history(config):
        if written_during(snapshot, record):
            wrote = True
            continue
        if wrote:
            await graph.aupdate_state(snapshot.config, None, as_node="__copy__")
        return
    if wrote:
        await services.memory.checkpointer.adelete_thread(record.thread_id)


async def run_worker_process(settings: Settings) -> None:
    """`switchboard worker`: this process's services and one worker, until SIGTERM or SIGINT;
    then it takes no new runs, lets the executing ones finish within
    `SWITCHBOARD_SERVER__SHUTDOWN_GRACE_S` and hands the rest back to the queue."""
    async with open_services(settings) as services:
        worker = make_worker(services)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.info("worker %s is taking runs", worker.name)
        running = asyncio.create_task(worker.run(), name=f"worker {worker.name}")
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([running, stopping], return_when=asyncio.FIRST_COMPLETED)
        worker.drain()
        if not await worker.drained(settings.server.shutdown_grace_s):
            log.warning("worker %s hands back the runs still executing", worker.name)
        running.cancel()
        stopping.cancel()
        await asyncio.gather(running, stopping, return_exceptions=True)
