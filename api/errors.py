"""Every error the API returns — in the OpenAI error envelope, or, under the LangGraph Server
paths (`/assistants`, `/threads`, `/runs`), in that protocol's `{"detail": ...}` with 422 for
invalid fields — and the body-size guard. A 503 says when to try again (`Retry-After`)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchboard.errors import InvalidRequest, NotFound, PayloadTooLarge, SwitchboardError

log = logging.getLogger(__name__)


_PROTOCOL_PATHS = ("/assistants", "/threads", "/runs")
RETRY_AFTER_S = 1


def error_response(exc: SwitchboardError, path: str = "") -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else None
    if path.startswith(_PROTOCOL_PATHS):
        body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
        if exc.param:
            body["param"] = exc.param
        return JSONResponse(body, status_code=exc.status, headers=headers)
    return JSONResponse(exc.envelope(), status_code=exc.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to the OpenAI envelope: 4xx for the client's mistakes, never a 500."""

    async def on_switchboard(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SwitchboardError)
        return error_response(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        invalid = _from_validation(exc)
        if request.url.path.startswith(_PROTOCOL_PATHS):
            invalid.status = 422  # LangGraph's server: an invalid field is unprocessable
        return error_response(invalid, request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        mapped: SwitchboardError
        if exc.status_code == 404:
            mapped = NotFound(str(exc.detail))
        else:
            mapped = InvalidRequest(str(exc.detail))
            mapped.status = exc.status_code
        return error_response(mapped, request.url.path)

    app.add_exception_handler(SwitchboardError, on_switchboard)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)


def _from_validation(exc: RequestValidationError) -> InvalidRequest:
    errors: list[dict[str, Any]] = list(exc.errors())
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        return InvalidRequest("request body is not valid JSON")
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = f"{param}: {first['msg']}" if param else str(first["msg"])
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return InvalidRequest(message, param=param)


class BodySizeLimit:
    """Refuses request bodies over the limit with 413, before they are read whole: by
    Content-Length when given, else by counting the chunks as they arrive. `max_bytes` holds
    for every path but those under a prefix in `overrides` (uploads)."""

    def __init__(self, app: ASGIApp, max_bytes: int, overrides: dict[str, int]) -> None:
        self.app = app
        self.default = max_bytes
        self.overrides = overrides

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = next(
            (size for prefix, size in self.overrides.items() if path.startswith(prefix)),
            self.default,
        )
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(limit, scope, receive, send)
                return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._refuse(limit, scope, receive, send)

    async def _refuse(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        exc = PayloadTooLarge(f"request body is larger than {limit} bytes")
        await error_response(exc)(scope, receive, send)


class _TooLarge(Exception):
    pass
