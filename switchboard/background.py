"""Work that follows a turn but must not hold up its answer (remembering facts about the user).

Each job is an asyncio task tagged with whose data it touches (tenant, user, thread), so that
forgetting a user or a thread first waits for that user's or thread's jobs in flight (otherwise a
fact could be stored just after the user was forgotten), and shutdown waits for all of them,
bounded. A job's failure is logged, never raised: the turn it follows has already been answered.
This covers one replica; a job in flight on another replica is not waited for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobOwner:
    tenant: str
    user: str | None
    thread_id: str | None


class BackgroundJobs:
    def __init__(self) -> None:
        self._jobs: dict[asyncio.Task[None], JobOwner] = {}

    @property
    def pending(self) -> int:
        return len(self._jobs)

    def start(self, owner: JobOwner, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(self._logged(work, name), name=name)
        self._jobs[task] = owner
        task.add_done_callback(self._jobs.pop)

    @staticmethod
    async def _logged(work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except Exception:
            log.exception("background job %s failed", name)

    async def wait_for(
        self, tenant: str, user: str | None = None, thread_id: str | None = None
    ) -> None:
        """Wait for the jobs in flight of `user` (all their threads) or of `thread_id`."""
        tasks = [
            task
            for task, owner in self._jobs.items()
            if owner.tenant == tenant
            and (user is None or owner.user == user)
            and (thread_id is None or owner.thread_id == thread_id)
        ]
        if tasks:
            # asyncio.wait, not gather: a cancelled waiter must not cancel the jobs.
            await asyncio.wait(tasks)

    async def drain(self, timeout: float) -> None:
        """At shutdown: let the jobs in flight finish, cancelling those still running after
        `timeout` seconds."""
        tasks = list(self._jobs)
        if not tasks:
            return
        _, running = await asyncio.wait(tasks, timeout=timeout)
        for task in running:
            task.cancel()
        if running:
            log.warning("%d background jobs cancelled at shutdown", len(running))
            await asyncio.gather(*running, return_exceptions=True)
