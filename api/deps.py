"""Dependencies the routes declare; all of them come from the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated, cast

from fastapi import Depends, Header, Request

from api.auth import Caller
from api.services import Services
from memory.api_keys import TENANT_PATTERN
from switchboard.ratelimit import RateLimiter
from switchboard.tracing import TraceRef, trace_ref


# Every dependency is a coroutine, even those that await nothing: FastAPI runs a plain `def`
# dependency in its thread pool, a hop to another thread and back (about 0.1 ms each) per request.
# And the shared ones read the services straight from the request: FastAPI solves a dependency's
# own dependencies again at each place it is declared (before finding it in its cache), so every
# `ServicesDep` inside `CallerDep` would be solved three times per run request.
async def get_services(request: Request) -> Services:
    return _services(request)


def _services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_caller(
    request: Request,
    authorization: Annotated[
        str | None,
        Header(description="`Bearer <API key>` (auth mode keys) or `Bearer <JWT>` (mode jwt)."),
    ] = None,
    x_api_key: Annotated[
        str | None,
        Header(
            description="The API key, as `langgraph-sdk` sends it (`api_key=`).", max_length=512
        ),
    ] = None,
    x_switchboard_tenant: Annotated[
        str | None,
        Header(
            pattern=TENANT_PATTERN,
            description="Only with auth mode `off`: the caller names its tenant (`default` "
            "when absent). Ignored otherwise: the key or token says whose it is.",
        ),
    ] = None,
) -> Caller:
    """The authenticated caller, its request counted against its rate limit (401 without valid
    credentials, 429 over the limit)."""
    services = _services(request)
    caller = await services.auth.caller(authorization, x_api_key, x_switchboard_tenant)
    if caller.subject is not None:
        await services.limiter.admit(caller.subject)
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_tenant(caller: CallerDep) -> str:
    return caller.tenant


TenantDep = Annotated[str, Depends(get_tenant)]


async def get_admin(caller: CallerDep) -> Caller:
    caller.require_admin()
    return caller


AdminDep = Annotated[Caller, Depends(get_admin)]


async def admit_run(request: Request, caller: CallerDep) -> Caller:
    """The caller of a request that starts a run: refused while its token budget is
    overdrawn. (A route takes it instead of `CallerDep`, not beside it: FastAPI validates a
    dependency's headers again at each place it is declared.)"""
    if caller.subject is not None:
        await _services(request).limiter.check_tokens(caller.subject)
    return caller


RunCallerDep = Annotated[Caller, Depends(admit_run)]


class StreamSlot:
    """Takes one of the caller's open-stream slots for the rest of the request (the response
    included); a request that streams calls `take` before it starts the run."""

    def __init__(self, limiter: RateLimiter, subject: str | None, stack: AsyncExitStack) -> None:
        self._limiter = limiter
        self._subject = subject
        self._stack = stack

    async def take(self) -> None:
        if self._subject is not None:
            await self._stack.enter_async_context(self._limiter.stream_slot(self._subject))


async def get_stream_slot(request: Request, caller: CallerDep) -> AsyncIterator[StreamSlot]:
    # A dependency's exit runs after the response has been sent: the slot is held while the
    # stream is open and given back when it ends, however it ends.
    async with AsyncExitStack() as stack:
        yield StreamSlot(_services(request).limiter, caller.subject, stack)


StreamSlotDep = Annotated[StreamSlot, Depends(get_stream_slot)]


async def get_trace(
    traceparent: Annotated[
        str | None,
        Header(
            max_length=128,
            description="W3C trace context: the run's trace joins the caller's (a malformed "
            "one is ignored and the run gets a trace of its own).",
        ),
    ] = None,
) -> TraceRef:
    return trace_ref(traceparent)


TraceDep = Annotated[TraceRef, Depends(get_trace)]
