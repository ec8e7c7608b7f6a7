"""Dependencies the routes declare; all of them come from the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Header, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

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


# The request headers that say who calls and what trace a run joins; declared once here, taken by
# `get_caller` and by `run_request`.
Authorization = Annotated[
    str | None,
    Header(description="`Bearer <API key>` (auth mode keys) or `Bearer <JWT>` (mode jwt)."),
]
ApiKey = Annotated[
    str | None,
    Header(description="The API key, as `langgraph-sdk` sends it (`api_key=`).", max_length=512),
]
TenantHeader = Annotated[
    str | None,
    Header(
        pattern=TENANT_PATTERN,
        description="Only with auth mode `off`: the caller names its tenant (`default` when "
        "absent). Ignored otherwise: the key or token says whose it is.",
    ),
]
Traceparent = Annotated[
    str | None,
    Header(
        max_length=128,
        description="W3C trace context: the run's trace joins the caller's (a malformed one is "
        "ignored and the run gets a trace of its own).",
    ),
]


async def get_caller(
    request: Request,
    authorization: Authorization = None,
    x_api_key: ApiKey = None,
    x_switchboard_tenant: TenantHeader = None,
) -> Caller:
    """The authenticated caller, its request counted against its rate limit (401 without valid
    credentials, 429 over the limit)."""
    return await _caller(_services(request), authorization, x_api_key, x_switchboard_tenant)


async def _caller(
    services: Services, authorization: str | None, api_key: str | None, tenant: str | None
) -> Caller:
    caller = await services.auth.caller(authorization, api_key, tenant)
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


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What a request that starts a run takes besides its body: the services, the caller (its
    token budget checked) and the trace it joins. One dependency with the headers as its own
    parameters, not one per part: FastAPI solves every dependency's parameters again at each
    place it is declared, before its cache (measured on `runs.wait`: 0.37 ms of solving with a
    dependency per part and the router's caller, 0.22 ms so)."""

    services: Services
    caller: Caller
    trace: TraceRef


async def run_request(
    request: Request,
    authorization: Authorization = None,
    x_api_key: ApiKey = None,
    x_switchboard_tenant: TenantHeader = None,
    traceparent: Traceparent = None,
) -> RunRequest:
    """The caller of a request that starts a run, refused while its token budget is overdrawn
    (and as `get_caller` refuses), with the services and the trace."""
    services = _services(request)
    caller = await _caller(services, authorization, x_api_key, x_switchboard_tenant)
    if caller.subject is not None:
        await services.limiter.check_tokens(caller.subject)
    return RunRequest(services, caller, trace_ref(traceparent))


RunRequestDep = Annotated[RunRequest, Depends(run_request)]

# A route needs one of these (`require_caller`): every route but the operational ones.
CALLER_DEPENDENCIES = (get_caller, run_request)


def require_caller(router: APIRouter) -> None:
    """Raise unless every route of `router` takes its caller (one of `CALLER_DEPENDENCIES`,
    directly or through another dependency). Routes declare it themselves rather than the
    router for them: declared twice, its headers would be solved twice per request."""
    missing = [
        f"{sorted(route.methods or ())} {route.path}"
        for route in router.routes
        if isinstance(route, APIRoute) and not _takes_caller(route.dependant)
    ]
    if missing:
        raise RuntimeError(f"routes without a caller dependency: {', '.join(missing)}")


def _takes_caller(dependant: Dependant) -> bool:
    return dependant.call in CALLER_DEPENDENCIES or any(
        _takes_caller(d) for d in dependant.dependencies
    )


class StreamSlot:
    """Takes one of the caller's open-stream slots for the rest of the request (the response
    included); a request that streams calls `take` before it starts the run."""

    def __init__(self, limiter: RateLimiter, stack: AsyncExitStack) -> None:
        self._limiter = limiter
        self._stack = stack

    async def take(self, caller: Caller) -> None:
        if caller.subject is not None:
            await self._stack.enter_async_context(self._limiter.stream_slot(caller.subject))


async def get_stream_slot(request: Request) -> AsyncIterator[StreamSlot]:
    # A dependency's exit runs after the response has been sent: the slot is held while the
    # stream is open and given back when it ends, however it ends.
    async with AsyncExitStack() as stack:
        yield StreamSlot(_services(request).limiter, stack)


StreamSlotDep = Annotated[StreamSlot, Depends(get_stream_slot)]
