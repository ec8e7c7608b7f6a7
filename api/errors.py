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


PROTOCOL_PATHS = ("/assistants", "/threads", "/runs")


def error_response(exc: SwitchboardError, path: str = "") -> JSONResponse:
    headers = exc.headers() or None
    if path.startswith(PROTOCOL_PATHS):
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
        if request.url.path.startswith(PROTOCOL_PATHS):
            invalid.status = 422  # LangGraph's server: an invalid field is unprocessable
        return error_response(invalid, request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        mapped: SwitchboardError
        if exc.status_code == 404:
            mapped = NotFound(str(exc.detail))
        elif exc.status_code == 413:
            mapped = PayloadTooLarge(str(exc.detail))
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
    Content-Length when given, else by counting the chunks as they arrive. `max_bytes` (the
    setting `setting`) holds for every path but those under a prefix in `overrides` (uploads),
    each a size and the settings it comes from; the refusal names the setting."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        overrides: dict[str, tuple[int, str]],
        setting: str = "SWITCHBOARD_LIMITS__MAX_BODY_BYTES",
    ) -> None:
        self.app = app
        self.default = (max_bytes, setting)
        self.overrides = overrides

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit, setting = next(
            (size for prefix, size in self.overrides.items() if path.startswith(prefix)),
            self.default,
        )
        message = f"request body is larger than {limit} bytes ({setting})"
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await error_response(PayloadTooLarge(message), path)(scope, receive, send)
                return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            received = await receive()
            if received["type"] == "http.request":
                seen += len(received.get("body", b""))
                if seen > limit:
                    raise _TooLarge(message)
            return received

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await error_response(PayloadTooLarge(message), path)(scope, receive, send)


class _TooLarge(HTTPException):
    """A body found too large while it is read. An `HTTPException`, so that FastAPI, which
    turns other errors met reading a body into a 400, lets the handlers answer it with 413."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)
