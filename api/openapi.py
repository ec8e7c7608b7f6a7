"""The OpenAPI document says what the API really answers, errors included, so that a client (or
schemathesis, `tests/conformance/`) can rely on it.

Routes name the error statuses they can return with `responses=errors(...)`; this module gives
every error response its body, by path as `api.errors` answers it — the OpenAI envelope, or the
LangGraph Server's `{"detail": ...}` under `/assistants`, `/threads` and `/runs` — and adds the
statuses that come from the framework rather than from a route:
- an invalid parameter or body: 400 (the OpenAI envelope), or 422 under the LangGraph paths,
  where a body that is not JSON and a handler's own refusals are still 400. FastAPI's default
  422 `HTTPValidationError` is dropped: `api.errors` answers every validation error itself;
- a body over the size limit (`BodySizeLimit`): 413, on every operation that takes a body;
- 503 and 429 say when to try again (`Retry-After`); 401 how to authenticate.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from api.errors import PROTOCOL_PATHS

__all__ = ["ErrorEnvelope", "ProtocolError", "errors", "install_openapi"]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorEnvelope(BaseModel):
    """OpenAI's error envelope: every error outside the LangGraph Server paths."""

    error: ErrorBody


class ProtocolError(BaseModel):
    """An error under the LangGraph Server paths (`/assistants`, `/threads`, `/runs`)."""

    detail: str
    code: str
    param: str | None = Field(default=None, description="The field at fault, when one is.")


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route or router that can answer with these error statuses; their
    bodies are filled in by `install_openapi`, as the route's path decides."""
    return {status: {"description": HTTPStatus(status).phrase} for status in statuses}


_REF = "#/components/schemas/"
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "string"},
    }
}
_HEADERS: dict[str, dict[str, Any]] = {
    "401": {
        "WWW-Authenticate": {
            "description": "How to authenticate: `Bearer`.",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    "429": _RETRY_AFTER,
    "503": _RETRY_AFTER,
}
_DEFAULT_422 = {"application/json": {"schema": {"$ref": f"{_REF}HTTPValidationError"}}}


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` (served at `/openapi.json`) declare the errors the app answers."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            _declare_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _declare_errors(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorBody, ErrorEnvelope, ProtocolError):
        components[model.__name__] = model.model_json_schema(ref_template=_REF + "{model}")
    for path, operations in schema.get("paths", {}).items():
        protocol = path.startswith(PROTOCOL_PATHS)
        body = {"$ref": _REF + ("ProtocolError" if protocol else "ErrorEnvelope")}
        for operation in operations.values():
            responses: dict[str, Any] = operation["responses"]
            if responses.get("422", {}).get("content") == _DEFAULT_422:
                del responses["422"]
            added: list[int] = []
            if operation.get("parameters") or "requestBody" in operation:
                added += [400, 422] if protocol else [400]
            if "requestBody" in operation:
                added.append(413)
            for code in added:
                responses.setdefault(str(code), {"description": HTTPStatus(code).phrase})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400 and "content" not in response:
                    response["content"] = {"application/json": {"schema": body}}
                    if status in _HEADERS:
                        response.setdefault("headers", _HEADERS[status])
            operation["responses"] = dict(sorted(responses.items()))
    if f"{_REF}HTTPValidationError" not in str(schema["paths"]):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
