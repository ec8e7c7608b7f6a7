"""Workers in this application: the one inside `switchboard serve` (on by default) and the
`switchboard worker` process, both executing runs from the Redis queue with this process's
services (`api.executor`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
    )


@asynccontextmanager
async def worker_running(services: Services) -> AsyncIterator[Worker | None]:
    """A worker in this process while the block runs, when the settings ask for one."""
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
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


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
    """`switchboard worker`: this process's services and one worker, until it is stopped."""
    async with open_services(settings) as services:
        worker = make_worker(services)
        log.info("worker %s is taking runs", worker.name)
        await worker.run()
