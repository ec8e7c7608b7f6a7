"""What a browser is told: cross-origin access (CORS, closed unless origins are configured) and the
security headers every response carries.

`SecurityHeaders` is plain ASGI, not `BaseHTTPMiddleware`, so a stream passes through it frame by
frame; only the small HTML pages of `/docs` and `/redoc` are held whole, to hash their inline
scripts into their Content-Security-Policy (no `'unsafe-inline'` for scripts anywhere).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CORS_HEADERS = (
    "Authorization",
    "Content-Type",
    "Last-Event-ID",
    "Idempotency-Key",
    "X-Switchboard-Tenant",
    "traceparent",
)
CORS_EXPOSED = (
    "X-Trace-Id",
    "X-Run-Id",
    "X-Thread-Id",
    "Content-Location",
    "Location",
    "Retry-After",
)
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

API_CSP = "default-src 'none'; frame-ancestors 'none'"
# FastAPI's Swagger UI and ReDoc pages load their code and styles from jsDelivr, ReDoc its fonts
# from Google Fonts; both fetch /openapi.json, ReDoc runs a blob: worker, Swagger UI and ReDoc
# set inline styles. Inline scripts are allowed by hash only (filled in per response).
_DOCS_CSP = (
    "default-src 'none'; "
    "script-src https://cdn.jsdelivr.net{hashes}; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "connect-src 'self'; "
    "worker-src blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})  # FastAPI's defaults
# The web console (`/` and `/console/...`): its own scripts, styles and API calls only; no inline
# code of any kind, nothing from elsewhere.
CONSOLE_CSP = (
    "default-src 'none'; "
    "script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
_FIXED = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
)


def install_cors(app: FastAPI, origins: Sequence[str]) -> None:
    """Let browsers on `origins` call the API with the headers it reads and see the headers
    it sets; with no origins, add nothing (no cross-origin response is ever allowed)."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=list(CORS_METHODS),
        allow_headers=list(CORS_HEADERS),
        expose_headers=list(CORS_EXPOSED),
        allow_credentials=False,  # bearer tokens travel in Authorization, not in cookies
        max_age=600,
    )


def docs_csp(html: bytes) -> str:
    """The Content-Security-Policy of a docs page: the CDN, and each inline script by hash."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return _DOCS_CSP.format(hashes=hashes)


class SecurityHeaders:
    """Adds X-Content-Type-Options, X-Frame-Options, Referrer-Policy, a Content-Security-Policy
    (`default-src 'none'` but on the docs and console pages) and `Cache-Control: no-store` to
    every HTTP response, keeping any of them the response set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in _DOCS_PATHS:
            await self._docs(scope, receive, send)
            return

        path: str = scope["path"]
        csp = CONSOLE_CSP if path == "/" or path.startswith("/console/") else API_CSP

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                _add_headers(message, csp)
            await send(message)

        await self.app(scope, receive, sending)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None
        body = bytearray()

        async def holding(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            headers = MutableHeaders(scope=start)
            if "content-length" in headers:
                headers["content-length"] = str(len(body))
            _add_headers(start, docs_csp(bytes(body)))
            await send(start)
            await send({"type": "http.response.body", "body": bytes(body), "more_body": False})

        await self.app(scope, receive, holding)


def _add_headers(start: Message, csp: str) -> None:
    headers = MutableHeaders(scope=start)
    for name, value in _FIXED:
        headers.setdefault(name, value)
    headers.setdefault("content-security-policy", csp)
