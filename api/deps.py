"""Dependencies the routes declare; all of them come from the app's lifespan."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Header, Request

from api.services import Services
from switchboard.tracing import TraceRef, trace_ref


def get_services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


def get_tenant(
    x_switchboard_tenant: Annotated[
        str,
        Header(
            pattern=r"^[A-Za-z0-9_.-]{1,64}$",
            description="Until API keys map callers "
            "to tenants, the caller names its tenant; `default` when absent.",
        ),
    ] = "default",
) -> str:
    return x_switchboard_tenant


TenantDep = Annotated[str, Depends(get_tenant)]


def get_trace(
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
