"""What browsers are told: CORS closed unless origins are configured, then open to those alone
with the headers the API uses; security headers on every response, streams included; a
Content-Security-Policy that still lets /docs load Swagger UI."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator

import httpx
import pytest

from api.web import CORS_EXPOSED, CORS_HEADERS
from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.service_runner import running_service

APP = "https://app.example"
SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.fixture(scope="module")
def closed(scripted_session: ScriptedBackend) -> Iterator[str]:
    with running_service(make_settings(backend_entry("primary", scripted_session))) as url:
        yield url


@pytest.fixture(scope="module")
def open_to_app(scripted_session: ScriptedBackend) -> Iterator[str]:
    auth = {"mode": "off", "cors_origins": [APP]}
    settings = make_settings(backend_entry("primary", scripted_session), auth=auth)
    with running_service(settings) as url:
        yield url


def _preflight(url: str, origin: str, method: str = "POST") -> httpx.Response:
    return httpx.options(
        f"{url}/v1/chat/completions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )


def test_by_default_no_origin_is_allowed(closed: str) -> None:
    preflight = _preflight(closed, APP)
    assert "access-control-allow-origin" not in preflight.headers
    simple = httpx.get(f"{closed}/v1/models", headers={"Origin": APP})
    assert simple.status_code == 200
    assert not [h for h in simple.headers if h.startswith("access-control-")]


def test_configured_origins_may_call_with_the_api_headers(open_to_app: str) -> None:
    preflight = _preflight(open_to_app, APP)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == APP
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for header in CORS_HEADERS:
        assert header.lower() in allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]
    simple = httpx.get(f"{open_to_app}/v1/models", headers={"Origin": APP})
    assert simple.headers["access-control-allow-origin"] == APP
    exposed = simple.headers["access-control-expose-headers"].lower()
    for header in ("x-trace-id", "content-location", "location"):
        assert header in exposed
    assert set(map(str.lower, CORS_EXPOSED)) <= set(exposed.replace(" ", "").split(","))


def test_other_origins_stay_out(open_to_app: str) -> None:
    preflight = _preflight(open_to_app, "https://evil.example")
    assert preflight.headers.get("access-control-allow-origin") != "https://evil.example"
    assert preflight.status_code == 400
    simple = httpx.get(f"{open_to_app}/v1/models", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/v1/models", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/v1/nothing-here", 404),
        ("POST", "/threads", 200),
    ],
)
def test_every_response_carries_the_security_headers(
    closed: str, method: str, path: str, status: int
) -> None:
    response = httpx.request(method, f"{closed}{path}", json={} if method == "POST" else None)
    assert response.status_code == status
    for name, value in SECURITY.items():
        assert response.headers[name] == value
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert response.headers["cache-control"] == "no-store"


def test_a_refused_body_carries_them_too(closed: str) -> None:
    response = httpx.post(
        f"{closed}/v1/chat/completions",
        content=b"x" * 2_000_000,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["x-frame-options"] == "DENY"


def test_a_stream_carries_them_and_is_not_held_back(
    closed: str, scripted_session: ScriptedBackend
) -> None:
    scripted_session.reset()
    scripted_session.set_default(Reply(text='{"route": "direct"}'), model="router")
    scripted_session.set_default(
        Reply(tokens=["one", " two", " three"], gap=0.3), model="generator"
    )
    body = {"messages": [{"role": "user", "content": "count"}], "quality_check": False}
    with httpx.stream("POST", f"{closed}/v1/chat/stream", json=body, timeout=30) as response:
        assert response.status_code == 200
        for name, value in SECURITY.items():
            assert response.headers[name] == value
        assert "no-store" in response.headers["cache-control"] or (
            "no-cache" in response.headers["cache-control"]
        )
        frames = response.iter_raw()
        first = next(frames)
        # The opening event arrives while the backend is still producing tokens.
        assert b"metadata" in first and b"event: end" not in first
        rest = b"".join(frames)
    assert b"event: end" in rest


def test_docs_load_swagger_ui_under_their_own_policy(closed: str) -> None:
    docs = httpx.get(f"{closed}/docs")
    assert docs.status_code == 200
    policy = docs.headers["content-security-policy"]
    assert "script-src https://cdn.jsdelivr.net" in policy
    assert "style-src 'unsafe-inline' https://cdn.jsdelivr.net" in policy
    assert "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    # Swagger UI's inline start-up script is allowed by its hash, and by nothing broader.
    scripts = re.findall(rb"<script>(.*?)</script>", docs.content, re.DOTALL)
    assert scripts
    for script in scripts:
        digest = base64.b64encode(hashlib.sha256(script).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert docs.headers["content-length"] == str(len(docs.content))
    redoc = httpx.get(f"{closed}/redoc")
    assert "https://cdn.jsdelivr.net" in redoc.headers["content-security-policy"]
    assert redoc.headers["x-frame-options"] == "DENY"
