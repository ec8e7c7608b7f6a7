"""LangGraph Server's runs, on a thread or stateless: created in the background, streamed, waited
for, listed, joined (as JSON or as a stream, resumable with `Last-Event-ID`) and cancelled.

Every run goes through the Redis queue (`switchboard.runs`) to a worker; its events are read back
from its Redis Stream, so any API replica serves any run. A stream's event ids are the Stream's
entry ids. Where LangGraph's server is silent or differs, we chose:
- a stream ends with an `end` event (data null), after the run's status is final;
- joining a stream without `Last-Event-ID` replays the run from its first event (LangGraph's
  server sends only what comes after the join, which loses a short run's events);
- `Idempotency-Key` on a create returns the run that key created (24 h by default).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from api.deps import CallerDep, RunRequest, RunRequestDep, ServicesDep, StreamSlotDep, TenantDep
from api.langgraph_schemas import STREAM_MODES, RunCreate
from api.limits import LimitExceeded, check_max_tokens, check_messages, check_metadata
from api.openapi import errors
from api.routes.assistants import find_workflow
from api.services import Services
from api.sse import sse_response
from api.streams import RunEvents
from switchboard.errors import InvalidRequest, NotFound, SwitchboardError
from switchboard.runs import RunRecord, StoredEvent, new_run_id
from switchboard.webhooks import check_webhook
from switchboard.worker import public_run

# Every run names an assistant, a thread or a run that may not be there (404).
router = APIRouter(tags=["runs"], responses=errors(404))

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=256)]


class ThreadBusy(SwitchboardError):
    status = 409
    type = "invalid_request_error"
    code = "thread_busy"


async def _create(
    run_request: RunRequest, thread_id: str | None, body: RunCreate, idempotency_key: str | None
) -> RunRecord:
    services, caller, trace = run_request.services, run_request.caller, run_request.trace
    tenant = caller.tenant
    spec = find_workflow(services, body.assistant_id)
    if idempotency_key is not None:
        # A retry returns its run before anything else happens (no second cancellation of the
        # thread's runs by `interrupt`/`rollback`).
        existing = await services.runs.idempotent(tenant, idempotency_key)
        if existing is not None:
            return existing
    if body.config and body.config.configurable and body.context:
        raise InvalidRequest("give the run's options as `context` or as `config`, not both")
    options = body.options()
    _check_limits(services, body, options.max_tokens)
    await services.memory.ensure_ready()
    threads = services.memory.threads
    stateless = thread_id is None
    creating = stateless or body.if_not_exists == "create"
    if thread_id is None:
        thread_id = new_run_id()
    # `enqueue` (the default) needs no look at the thread's runs (they execute in order anyway):
    # its claim then goes with the run's queueing, in one round trip.
    strategy = body.multitask_strategy
    if not stateless and strategy != "enqueue":
        owner = await threads.claim(thread_id, tenant, options.user, spec.name, creating)
        if owner is None or owner.tenant != tenant:
            raise NotFound(f"thread {thread_id!r} not found", param="thread_id")
        active = await services.runs.active(thread_id)
        if active and body.multitask_strategy == "reject":
            raise ThreadBusy(
                "the thread is already running a run; wait for it to finish or choose "
                "another multitask_strategy"
            )
        if active and body.multitask_strategy in ("interrupt", "rollback"):
            for run_id in active:
                await services.runs.request_cancel(run_id, body.multitask_strategy)
    if body.webhook is not None:
        await check_webhook(str(body.webhook), services.settings.runtime.webhook_private_hosts)
    record = RunRecord(
        run_id=new_run_id(),
        thread_id=thread_id,
        assistant_id=spec.name,
        tenant=tenant,
        rate_subject=caller.subject,
        kind="langgraph",
        input=({"messages": [m.to_backend() for m in body.input.messages]} if body.input else None),
        options={**options.model_dump(), "allow_retry": "values" not in body.stream_mode},
        stream_modes=list(body.stream_mode),
        metadata=body.metadata,
        multitask_strategy=body.multitask_strategy,
        webhook=str(body.webhook) if body.webhook else None,
        stateless=stateless and body.on_completion == "delete",
        trace_id=trace.trace_id,
        parent_span_id=trace.parent_span_id,
    )
    if record.input is None:
        raise InvalidRequest("input: a run needs input with messages", param="input")
    owned = threads.owned_by(thread_id, tenant, options.user, spec.name, creating)
    return await services.submit(record, idempotency_key, owned)


def _check_limits(services: Services, body: RunCreate, max_tokens: int | None) -> None:
    """The run's input messages, metadata and `max_tokens` within the limits (413, 422)."""
    limits = services.settings.limits
    if body.input is not None:
        check_messages([m.content for m in body.input.messages], limits, "input.messages")
    check_metadata(body.metadata, limits)
    check_max_tokens(max_tokens, limits, LimitExceeded)


def _locations(record: RunRecord, stateless: bool) -> dict[str, str]:
    """Where the run is, and where its stream is joined (the SDK reconnects there; a stateless
    run's stream is joined through its temporary thread)."""
    thread_run = f"/threads/{record.thread_id}/runs/{record.run_id}"
    return {
        "Content-Location": f"/runs/{record.run_id}" if stateless else thread_run,
        "Location": f"{thread_run}/stream",
        "X-Trace-Id": record.trace_id,
    }


def _frame(event: StoredEvent) -> bytes:
    if event.last:
        return f"event: end\ndata: null\nid: {event.id}\n\n".encode()
    head = f"event: {event.name}\ndata: ".encode()
    return head + event.encoded + f"\nid: {event.id}\n\n".encode()


async def _stream(run: RunEvents, modes: set[str] | None) -> AsyncIterator[bytes]:
    """A run's events as LangGraph's server frames them; `modes` None: every event."""
    try:
        async for event in run:
            if event.last or modes is None or event.name in modes:
                yield _frame(event)
    finally:
        run.close()


def _event_names(modes: list[str]) -> set[str]:
    """Stream modes as event names (`messages-tuple` is sent as `messages`)."""
    names = {"messages" if m == "messages-tuple" else m for m in modes}
    return names | {"metadata", "error"}


async def _outcome(run: RunEvents) -> dict[str, Any]:
    """The run's final values, as `/wait` and `/join` answer (from its last event: `run` is
    made `last_only`); a failure as `__error__`."""
    summary: dict[str, Any] = {}
    try:
        async for event in run:
            if event.last:
                summary = event.data or {}
    finally:
        run.close()
    if summary.get("status") == "error":
        error = summary.get("error") or {}
        return {
            "__error__": {"error": error.get("error", "Error"), "message": error.get("message", "")}
        }
    output: dict[str, Any] = summary.get("output") or {}
    return output


async def _created(
    run_request: RunRequest, thread_id: str | None, body: RunCreate, key: str | None
) -> JSONResponse:
    record = await _create(run_request, thread_id, body, key)
    return JSONResponse(public_run(record), headers=_locations(record, thread_id is None))


async def _streamed(
    run_request: RunRequest, thread_id: str | None, body: RunCreate, key: str | None
) -> StreamingResponse:
    record = await _create(run_request, thread_id, body, key)
    events = RunEvents(
        run_request.services, record.run_id, cancel_on_close=body.on_disconnect == "cancel"
    )
    return sse_response(_stream(events, None), _locations(record, thread_id is None))


async def _waited(
    run_request: RunRequest, thread_id: str | None, body: RunCreate, key: str | None
) -> JSONResponse:
    record = await _create(run_request, thread_id, body, key)
    events = RunEvents(
        run_request.services,
        record.run_id,
        cancel_on_close=body.on_disconnect == "cancel",
        last_only=True,
    )
    headers = _locations(record, thread_id is None)
    headers["Location"] = f"/threads/{record.thread_id}/runs/{record.run_id}/join"
    return JSONResponse(await _outcome(events), headers=headers)


_SSE: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}}}}
# A run on a thread: 409 when the thread is busy and `multitask_strategy` is `reject`.
_BUSY = errors(409)


# Runs on a thread.
@router.post("/threads/{thread_id}/runs", responses=_BUSY)
async def create_run(
    thread_id: str,
    body: RunCreate,
    run_request: RunRequestDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _created(run_request, thread_id, body, idempotency_key)


@router.post(
    "/threads/{thread_id}/runs/stream",
    response_class=StreamingResponse,
    responses={**_SSE, **_BUSY},
)
async def stream_run(
    thread_id: str,
    body: RunCreate,
    run_request: RunRequestDep,
    slot: StreamSlotDep,
    idempotency_key: IdempotencyKey = None,
) -> StreamingResponse:
    await slot.take(run_request.caller)
    return await _streamed(run_request, thread_id, body, idempotency_key)


@router.post("/threads/{thread_id}/runs/wait", responses=_BUSY)
async def wait_run(
    thread_id: str,
    body: RunCreate,
    run_request: RunRequestDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _waited(run_request, thread_id, body, idempotency_key)


# Stateless runs: a thread of their own, forgotten when they end (`on_completion: keep` keeps it).
@router.post("/runs")
async def create_stateless_run(
    body: RunCreate,
    run_request: RunRequestDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _created(run_request, None, body, idempotency_key)


@router.post(
    "/runs/stream",
    response_class=StreamingResponse,
    responses=_SSE,
)
async def stream_stateless_run(
    body: RunCreate,
    run_request: RunRequestDep,
    slot: StreamSlotDep,
    idempotency_key: IdempotencyKey = None,
) -> StreamingResponse:
    await slot.take(run_request.caller)
    return await _streamed(run_request, None, body, idempotency_key)


@router.post("/runs/wait")
async def wait_stateless_run(
    body: RunCreate,
    run_request: RunRequestDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _waited(run_request, None, body, idempotency_key)


# Reading, joining and cancelling.
async def _run(services: Services, tenant: str, thread_id: str, run_id: str) -> RunRecord:
    record = await services.runs.get(run_id)
    if record is None or record.thread_id != thread_id or record.tenant != tenant:
        raise NotFound(f"run {run_id!r} not found on thread {thread_id!r}", param="run_id")
    return record


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    thread_id: str,
    services: ServicesDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0)] = 0,
    status: str | None = None,
) -> list[dict[str, Any]]:
    owner = await services.memory.threads.get(thread_id)
    if owner is None or owner.tenant != tenant:
        raise NotFound(f"thread {thread_id!r} not found", param="thread_id")
    return [public_run(r) for r in await services.runs.list_runs(thread_id, limit, offset, status)]


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_run(
    thread_id: str, run_id: str, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    return public_run(await _run(services, tenant, thread_id, run_id))


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(
    thread_id: str, run_id: str, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    record = await _run(services, tenant, thread_id, run_id)
    return await _outcome(RunEvents(services, record.run_id, last_only=True))


@router.get(
    "/threads/{thread_id}/runs/{run_id}/stream", response_class=StreamingResponse, responses=_SSE
)
async def join_run_stream(
    thread_id: str,
    run_id: str,
    request: Request,
    services: ServicesDep,
    caller: CallerDep,
    slot: StreamSlotDep,
    cancel_on_disconnect: bool = False,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=64, pattern=r"^\d+(-\d+)?$")
    ] = None,
) -> StreamingResponse:
    """The run's events after `Last-Event-ID` (all of them without it), then live ones."""
    record = await _run(services, caller.tenant, thread_id, run_id)
    modes = [m for m in request.query_params.getlist("stream_mode") if m]
    unknown = [m for m in modes if m not in STREAM_MODES]
    if unknown:
        raise InvalidRequest(
            f"stream_mode: {unknown[0]!r} is not one of {', '.join(STREAM_MODES)}",
            param="stream_mode",
        )
    await slot.take(caller)
    run = RunEvents(
        services,
        record.run_id,
        after=last_event_id or "0",
        cancel_on_close=cancel_on_disconnect,
    )
    return sse_response(_stream(run, _event_names(modes) if modes else None))


@router.post(
    "/threads/{thread_id}/runs/{run_id}/cancel",
    response_model=None,
    responses={202: {"description": "Accepted: the run is being cancelled (`wait` false)."}},
)
async def cancel_run(
    thread_id: str,
    run_id: str,
    services: ServicesDep,
    tenant: TenantDep,
    wait: bool = False,
    action: Annotated[str, Query(pattern="^(interrupt|rollback)$")] = "interrupt",
) -> Response:
    record = await _run(services, tenant, thread_id, run_id)
    if record.finished:
        raise NotFound(f"run {run_id!r} has already finished", param="run_id")
    await services.runs.request_cancel(run_id, action)  # type: ignore[arg-type]
    if wait:
        return JSONResponse(await _outcome(RunEvents(services, run_id, last_only=True)))
    return Response(status_code=202)


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204, responses=_BUSY)
async def delete_run(
    thread_id: str, run_id: str, services: ServicesDep, tenant: TenantDep
) -> Response:
    record = await _run(services, tenant, thread_id, run_id)
    if not record.finished:
        raise ThreadBusy(f"run {run_id!r} has not finished; cancel it first")
    await services.runs.delete(record)
    return Response(status_code=204)
