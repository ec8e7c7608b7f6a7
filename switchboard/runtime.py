"""Running a workflow and turning what it does into the native event stream of a run. Workers
(`switchboard.worker`) call it; the API reads the events back from Redis (`switchboard.runs`)."""

from __future__ import annotations

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
    trace_id: str = ""
    trace_url: str | None = None  # the trace in Langfuse's UI, when configured


def new_run(workflow: str, thread_id: str | None) -> RunInfo:
    return RunInfo(uuid.uuid4().hex, thread_id or uuid.uuid4().hex, workflow)


async def run_events(
    workflow: Workflow,
    info: RunInfo,
    input: Mapping[str, Any] | None,
    context: Any,
    durability: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> AsyncGenerator[Event, None]:
    """Run `workflow` and yield its events: `metadata` first, the workflow's own events (which
    its nodes emit through LangGraph's stream writer) as they happen, then one `end` with the
    final state or one `error`."""
    metadata_event = {
        "run_id": info.run_id,
        "thread_id": info.thread_id,
        "workflow": info.workflow,
        "trace_id": info.trace_id,
    }
    if info.trace_url:
        metadata_event["trace_url"] = info.trace_url
    yield Event(EventKind.METADATA, metadata_event)
    final: dict[str, Any] = {}
    try:
        # `values` with the output keys only: the final state without the (large) input.
        async for mode, chunk in workflow.astream(
            input,
            {"configurable": {"thread_id": info.thread_id}, "metadata": dict(metadata or {})},
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
