"""What a worker does with a run: build the workflow's context from the run's record and this
process's services, run the workflow, and turn what it does into the run's events — the native
event model for chat runs, LangGraph Server's stream modes for runs made through its API.

A run whose worker died is executed again by another (`record.attempt` > 1): when the thread's
last checkpoint was written by this run and still has nodes to go, it resumes from there (input
None); otherwise it starts over from its input (nothing of it was saved).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langgraph.types import StateSnapshot

from api.services import Services
from graphs import RouterContext
from switchboard.errors import SwitchboardError
from switchboard.events import Event, EventKind
from switchboard.llm import RUN_USAGE, Usage
from switchboard.runs import RunRecord
from switchboard.runtime import RunInfo, run_events
from switchboard.tracing import Observation, TraceRef, Tracing
from switchboard.tracing import current as current_tracing
from switchboard.worker import Emit, Executor, Outcome

log = logging.getLogger(__name__)

Step = Emit | Outcome


async def build_context(services: Services, record: RunRecord) -> RouterContext:
    settings = services.settings
    options = record.options
    quality = settings.quality
    if options.get("quality_check") is not None:
        quality = quality.model_copy(update={"enabled": options["quality_check"]})
    spec = services.workflows[record.assistant_id]
    retrieval = await services.retrieval.wait()
    return RouterContext(
        llm=services.llm,
        router=settings.router,
        quality=quality,
        max_tokens=options.get("max_tokens") or settings.router.max_tokens,
        temperature=options.get("temperature"),
        route=spec.route or options.get("route"),
        allow_retry=options.get("allow_retry", True),
        retriever=retrieval.retriever if retrieval else None,
        tenant=record.tenant,
        context_tokens=settings.retrieval.context_tokens,
        user=options.get("user"),
        thread_id=record.thread_id,
        memory=services.memory.long_term,
        memory_settings=settings.memory,
        background=services.background,
        crew=services.crew,
    )


def make_executor(services: Services) -> Executor:
    async def execute(record: RunRecord) -> AsyncIterator[Step]:
        tracing = current_tracing()
        with tracing.run(
            TraceRef(record.trace_id, record.parent_span_id),
            name=record.assistant_id,
            session_id=record.thread_id,
            user_id=record.options.get("user"),
            tags=[f"workflow:{record.assistant_id}"],
            input=record.input,
            metadata={"run_id": record.run_id, "tenant": record.tenant},
        ) as root:
            steps = (
                _chat(services, record) if record.kind == "chat" else _langgraph(services, record)
            )
            # Each run executes in a task of its own: the total is this run's alone.
            usage = Usage()
            RUN_USAGE.set(usage)
            try:
                async for item in steps:
                    if isinstance(item, Outcome):
                        _trace_outcome(tracing, record, root, item)
                    yield item
            finally:
                if record.rate_subject is not None and usage.total_tokens:
                    await _charge(services, record.rate_subject, usage.total_tokens)

    return execute


async def _charge(services: Services, subject: str, tokens: int) -> None:
    """The run's tokens against its caller's budget; a failure to count loses the count, not
    the run."""
    try:
        await services.limiter.charge_tokens(subject, tokens)
    except Exception as exc:
        log.warning("could not charge %d tokens to %s: %s", tokens, subject, exc)


def _trace_outcome(
    tracing: Tracing, record: RunRecord, root: Observation, outcome: Outcome
) -> None:
    """The run's end on its root span, and its quality score (the judge's) as a trace score."""
    if outcome.error is not None:
        root.update(output=outcome.error, level="ERROR", status_message=outcome.status)
        return
    output = outcome.output or {}
    root.update(output=output.get("answer", output))
    quality = output.get("quality")
    if isinstance(quality, int | float) and record.trace_id:
        tracing.score(record.trace_id, "quality", float(quality))


def written_during(snapshot: StateSnapshot, record: RunRecord) -> bool:
    """Whether the checkpoint was written after the run began (by the run: its thread runs one
    run at a time). Both times come from the worker that executed that attempt."""
    if snapshot.created_at is None or record.started_at is None:
        return False
    return datetime.fromisoformat(snapshot.created_at).timestamp() >= record.started_at


@dataclass(frozen=True, slots=True)
class _Finished:
    """A reclaimed run whose graph had finished (its worker died before recording it)."""

    values: dict[str, Any]


async def _input(services: Services, record: RunRecord) -> dict[str, Any] | _Finished | None:
    """The run's input; or, for a reclaimed run that wrote checkpoints: None to resume from
    the last one when nodes are still to go, or `_Finished` when none are (never run twice)."""
    if record.attempt <= 1:
        return record.input
    graph = services.workflows[record.assistant_id].graph
    state = await graph.aget_state({"configurable": {"thread_id": record.thread_id}})
    if not written_during(state, record):
        return record.input
    if not state.next:
        log.info("run %s had finished before its worker stopped", record.run_id)
        return _Finished(_public_values(state.values))
    log.info("run %s resumes from its checkpoint before %s", record.run_id, state.next)
    return None


def _config(record: RunRecord) -> dict[str, Any]:
    return {"configurable": {"thread_id": record.thread_id}, "metadata": {"run_id": record.run_id}}


async def _chat(services: Services, record: RunRecord) -> AsyncIterator[Step]:
    spec = services.workflows[record.assistant_id]
    trace_url = current_tracing().url(record.trace_id) if record.trace_id else None
    info = RunInfo(record.run_id, record.thread_id, spec.name, record.trace_id, trace_url)
    context = await build_context(services, record)
    run_input = await _input(services, record)
    if isinstance(run_input, _Finished):
        yield Outcome("success", output=_output(spec.graph, run_input.values))
        return
    durability = services.settings.redis.durability
    async for event in run_events(
        spec.graph, info, run_input, context, durability, metadata={"run_id": record.run_id}
    ):
        yield Emit(event.kind.value, event.data)
        if event.kind is EventKind.END:
            yield Outcome("success", output=event.data.get("output"))
        elif event.kind is EventKind.ERROR:
            yield Outcome("error", error=event.data)


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, SwitchboardError):
        return {"error": type(exc).__name__, "message": exc.message, "code": exc.code}
    return {"error": type(exc).__name__, "message": "An internal error occurred"}


def _message_chunk(record: RunRecord, text: str, node: str) -> list[dict[str, Any]]:
    """A token as `messages-tuple` carries it: LangChain's AIMessageChunk, and its metadata."""
    chunk: dict[str, Any] = {
        "content": text,
        "additional_kwargs": {},
        "response_metadata": {},
        "type": "AIMessageChunk",
        "name": None,
        "id": f"run-{record.run_id}",
        "tool_calls": [],
        "invalid_tool_calls": [],
        "usage_metadata": None,
        "tool_call_chunks": [],
    }
    metadata = {
        "langgraph_node": node,
        "run_id": record.run_id,
        "thread_id": record.thread_id,
        "assistant_id": record.assistant_id,
    }
    return [chunk, metadata]


async def _langgraph(services: Services, record: RunRecord) -> AsyncIterator[Step]:
    spec = services.workflows[record.assistant_id]
    graph: Any = spec.graph  # its typed overloads want RouterInput; the input was validated
    modes = set(record.stream_modes)
    metadata: dict[str, Any] = {
        "run_id": record.run_id,
        "attempt": record.attempt,
        "trace_id": record.trace_id,
    }
    trace_url = current_tracing().url(record.trace_id) if record.trace_id else None
    if trace_url:
        metadata["trace_url"] = trace_url
    yield Emit("metadata", metadata)
    context = await build_context(services, record)
    run_input = await _input(services, record)
    if isinstance(run_input, _Finished):
        yield Outcome("success", output=run_input.values)
        return
    final: dict[str, Any] | None = None
    node = "generate"
    # Only what the run's modes need from the graph: `values` for the final state; `custom` for
    # itself and for the tokens of `messages-tuple`. Without `custom`, the graph's writer is a
    # no-op and its tokens cost nothing here (a `wait` run).
    graph_modes = ["values"]
    if "updates" in modes:
        graph_modes.append("updates")
    if modes & {"custom", "messages-tuple"}:
        graph_modes.append("custom")
    try:
        async for mode, chunk in graph.astream(
            run_input,
            _config(record),
            context=context,
            stream_mode=graph_modes,
            durability=services.settings.redis.durability,
        ):
            if mode == "values":
                final = _public_values(chunk)
                if "values" in modes:
                    yield Emit("values", final)
            elif mode == "updates":
                if "updates" in modes:
                    yield Emit("updates", {n: _public_values(u) for n, u in chunk.items()})
            elif isinstance(chunk, Event):
                if chunk.kind is EventKind.ROUTE:
                    node = "crew" if chunk.data.get("route") == "crew" else "generate"
                if "custom" in modes:
                    yield Emit("custom", {"event": chunk.kind.value, "data": chunk.data})
                if chunk.kind is EventKind.TOKEN and "messages-tuple" in modes:
                    yield Emit("messages", _message_chunk(record, chunk.data["text"], node))
    except Exception as exc:
        if not isinstance(exc, SwitchboardError):
            log.exception("run %s crashed", record.run_id)
        error = _error(exc)
        yield Emit("error", error)
        yield Outcome("error", error=error)
        return
    yield Outcome("success", output=final or {})


def _output(graph: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The chat output (the graph's output channels) from a finished state."""
    channels = graph.output_channels
    keys = [channels] if isinstance(channels, str) else list(channels)
    return {k: values[k] for k in keys if k in values}


def _public_values(values: Any) -> Any:
    """State as clients see it: without the turn's scratch (the assembled prompt)."""
    if isinstance(values, dict):
        return {k: v for k, v in values.items() if k not in ("prompt", "memories")}
    return values
