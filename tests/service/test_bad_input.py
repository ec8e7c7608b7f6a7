"""Bad input gets a 4xx in the OpenAI error envelope, never a 500."""

from typing import Any

import httpx
import pytest

from tests.backends import ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.service_runner import running_service

USER = [{"role": "user", "content": "hi"}]


def _post(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", **kwargs)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "nope", "messages": USER}, 404, "unknown model 'nope'"),
        ({"model": "switchboard", "messages": []}, 400, "messages must not be empty"),
        ({"model": "switchboard"}, 400, "messages: Field required"),
        ({"model": "switchboard", "messages": "hi"}, 400, "messages: Input should be a valid list"),
        ({"model": "switchboard", "messages": [{"role": "wizard", "content": "x"}]}, 400, "role"),
        (
            {"model": "switchboard", "messages": [{"role": "user", "content": "  "}]},
            400,
            "non-empty user",
        ),
        ({"model": "switchboard", "messages": USER, "max_tokens": 0}, 400, "max_tokens"),
        ({"model": "switchboard", "messages": USER, "max_tokens": 10**6}, 400, "max_tokens"),
        ({"model": "switchboard", "messages": USER, "temperature": "hot"}, 400, "temperature"),
        ({"model": "switchboard", "messages": USER, "stream": "maybe"}, 400, "stream"),
        ({"model": "switchboard", "messages": USER, "route": "teleport"}, 400, "route"),
    ],
)
def test_bad_bodies(service: str, body: dict[str, Any], status: int, message: str) -> None:
    response = _post(service, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"


def test_malformed_json(service: str) -> None:
    response = _post(
        service,
        content=b'{"model": "switchboard", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "request body is not valid JSON"


def test_native_stream_refuses_unknown_fields_and_workflows(service: str) -> None:
    response = httpx.post(f"{service}/v1/chat/stream", json={"messages": USER, "wat": 1})
    assert response.status_code == 400 and "wat" in response.json()["error"]["message"]
    response = httpx.post(f"{service}/v1/chat/stream", json={"messages": USER, "workflow": "x"})
    assert response.status_code == 404


def test_size_limits(backend: ScriptedBackend) -> None:
    limits = {"max_body_bytes": 4096, "max_messages": 3, "max_message_chars": 100}
    settings = make_settings(backend_entry("primary", backend), limits=limits)
    with running_service(settings) as url:
        too_long = [{"role": "user", "content": "x" * 101}]
        response = _post(url, json={"model": "switchboard", "messages": too_long})
        assert response.status_code == 413
        assert response.json()["error"]["param"] == "messages.0.content"
        too_many = USER * 4
        response = _post(url, json={"model": "switchboard", "messages": too_many})
        assert response.status_code == 413 and "at most 3" in response.json()["error"]["message"]
        huge = {"model": "switchboard", "messages": [{"role": "user", "content": "y" * 5000}]}
        response = _post(url, json=huge)
        assert response.status_code == 413
        assert "larger than 4096 bytes" in response.json()["error"]["message"]


def test_unknown_path_is_an_enveloped_404(service: str) -> None:
    response = httpx.get(f"{service}/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
