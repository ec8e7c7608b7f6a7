"""Running a workflow and turning what it does into the run's event stream.

This is the in-process runtime: `start_run` runs a workflow in a task of its own and hands back a
`RunStream` of its events; closing the stream (a client going away) cancels the run and the
backend request under it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from switchboard.errors import SwitchboardError
from switchboard.events import Event, EventKind

log = logging.getLogger(__name__)


class Workflow(Protocol):
    """What the runtime needs of a compiled LangGraph graph."""

    @property
    def output_channels(self) -> str | Sequence[str]: ...

    def astream(
        self,
        input: Any,
        config: Any = None,
        *,
        context: Any = None,
        stream_mode: Any = None,
        output_keys: str | Sequence[str] | None = None,
        durability: Any = None,
    ) -> AsyncIterator[Any]: ...


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    thread_id: str
    workflow: str


def new_run(workflow: str, thread_id: str | None) -> RunInfo:
    return RunInfo(uuid.uuid4().hex, thread_id or uuid.uuid4().hex, workflow)


async def run_events(
    workflow: Workflow,
    info: RunInfo,
    input: Mapping[str, Any],
    context: Any,
    durability: str | None = None,
) -> AsyncGenerator[Event, None]:
    """Run `workflow` and yield its events: `metadata` first, the workflow's own events (which
    its nodes emit through LangGraph's stream writer) as they happen, then one `end` with the
    final state or one `error`."""
    yield Event(
        EventKind.METADATA,
        {"run_id": info.run_id, "thread_id": info.thread_id, "workflow": info.workflow},
    )
    final: dict[str, Any] = {}
    try:
        # `values` with the output keys only: the final state without the (large) input.
        async for mode, chunk in workflow.astream(
            input,
            {"configurable": {"thread_id": info.thread_id}},
            context=context,
            stream_mode=["custom", "values"],
            output_keys=workflow.output_channels,
            durability=durability,
        ):
            if mode == "custom":
                yield chunk
            else:
                final = chunk
    except SwitchboardError as exc:
        log.warning("run %s failed: %s", info.run_id, exc.message)
        yield Event(EventKind.ERROR, {**exc.envelope()["error"], "status": exc.status})
        return
    except Exception:
        log.exception("run %s crashed", info.run_id)
        yield Event(
            EventKind.ERROR,
            {
                "message": "internal error",
                "type": "server_error",
                "param": None,
                "code": "internal_error",
                "status": 500,
            },
        )
        return
    yield Event(EventKind.END, {"output": final})


class RunStream:
    """A run executing in its own task, read as an async iterator of events.

    The run gets a task of its own rather than being iterated by the HTTP response: Starlette
    cancels a response through an anyio cancel scope, which re-cancels every await of the
    cleanup, and LangGraph's loop then leaves the node (and the backend request) running.
    Cancelling a plain task reaches the node at once.
    """

    def __init__(self, events: AsyncGenerator[Event, None]) -> None:
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._pump(events))

    async def _pump(self, events: AsyncGenerator[Event, None]) -> None:
        try:
            async for event in events:
                self._queue.put_nowait(event)
        finally:
            self._queue.put_nowait(None)

    def __aiter__(self) -> RunStream:
        return self

    async def __anext__(self) -> Event:
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        """Cancel the run if it is still going; safe to call more than once."""
        self._task.cancel()


def start_run(
    workflow: Workflow,
    info: RunInfo,
    input: Mapping[str, Any],
    context: Any,
    durability: str | None = None,
) -> RunStream:
    """Start `workflow` in its own task; see `run_events` for what the stream carries."""
    return RunStream(run_events(workflow, info, input, context, durability))
