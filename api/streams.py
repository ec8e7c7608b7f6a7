"""Following a run's events as a worker writes them to Redis, from any API replica."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from api.services import Services
from switchboard.events import Event, EventKind
from switchboard.runs import CancelAction, StoredEvent

log = logging.getLogger(__name__)

# Cancellation requests sent when a follower closes: held so that they are not collected.
_pending: set[asyncio.Task[None]] = set()


class RunEvents:
    """The run's events after `after` (an event id; "0": from the start), up to its last, as an
    async iterator; with `last_only`, that last one alone (its outcome: a `wait`, a `join`).
    With `cancel_on_close`, closing it before the end cancels the run."""

    def __init__(
        self,
        services: Services,
        run_id: str,
        after: str = "0",
        cancel_on_close: bool = False,
        last_only: bool = False,
    ) -> None:
        self._store = services.runs
        self.run_id = run_id
        self._events = services.events.follow(run_id, after, last_only)
        self._cancel_on_close = cancel_on_close
        self._ended = False

    def __aiter__(self) -> AsyncIterator[StoredEvent]:
        return self._follow()

    async def _follow(self) -> AsyncIterator[StoredEvent]:
        async for event in self._events:
            if event.last:
                self._ended = True
            yield event

    async def native(self) -> AsyncIterator[tuple[str, Event]]:
        """A chat run's events in the native model, with their ids, without the worker's closing
        marker (the run's own `end` or `error` comes before it)."""
        async for event in self:
            if event.last:
                return
            native = Event(EventKind(event.name), event.data)
            if native.kind in (EventKind.END, EventKind.ERROR):
                self._ended = True  # its outcome is out: closing now must not cancel it
            yield event.id, native

    def close(self, action: CancelAction = "interrupt") -> None:
        """Stop following; cancel the run if it has not ended and this follower owns it. Safe
        to call more than once, and from a cancelled task (the request runs in a task of its
        own, since the caller's awaits may be cancelled again)."""
        if self._cancel_on_close and not self._ended:
            self._cancel_on_close = False
            task = asyncio.create_task(self._cancel(action))
            _pending.add(task)
            task.add_done_callback(_pending.discard)

    async def _cancel(self, action: CancelAction) -> None:
        try:
            await self._store.request_cancel(self.run_id, action)
        except Exception:
            log.exception("could not cancel run %s", self.run_id)
