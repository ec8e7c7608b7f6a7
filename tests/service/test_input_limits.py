"""Every input limit, on every endpoint it guards, answered with its status and a message that
names the limit and its setting (the real service, with small limits so the tests are cheap)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.backends import ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.service_runner import running_service

LIMITS = {
    "max_body_bytes": 4096,
    "max_messages": 3,
    "max_message_chars": 100,
    "max_tokens": 50,
    "max_metadata_bytes": 200,
    "max_graph_hops": 1,
    "max_graph_results": 5,
}
UPLOADS = {"max_upload_bytes": 2048, "max_upload_files": 2, "background_bytes": 0}
USER = {"role": "user", "content": "hi"}
TOO_MANY = [USER] * 4
TOO_LONG = [{"role": "user", "content": "x" * 101}]
BIG_METADATA = {"note": "m" * 300}


@pytest.fixture(scope="module")
def limited(scripted_session: ScriptedBackend) -> Iterator[str]:
    settings = make_settings(
        backend_entry("primary", scripted_session), limits=LIMITS, retrieval=UPLOADS
    )
    with running_service(settings) as url:
        yield url


def _chat(messages: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {"json": {"model": "switchboard", "messages": messages, **extra}}


def _run(messages: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {"json": {"assistant_id": "switchboard", "input": {"messages": messages}, **extra}}


def _files(*sizes: int) -> dict[str, Any]:
    return {
        "files": [
            ("files", (f"f{i}.txt", b"a" * size, "text/plain")) for i, size in enumerate(sizes)
        ]
    }


CASES: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    # (id, method, path, request, status, the setting the message names)
    ("chat-messages", "POST", "/v1/chat/completions", _chat(TOO_MANY), 413, "LIMITS__MAX_MESSAGES"),
    ("chat-length", "POST", "/v1/chat/completions", _chat(TOO_LONG), 413, "MAX_MESSAGE_CHARS"),
    ("chat-tokens", "POST", "/v1/chat/completions", _chat([USER], max_tokens=51), 400, "MAX_TOKENS"),
    ("chat-body", "POST", "/v1/chat/completions", _chat([{"role": "user", "content": "y" * 5000}]), 413, "MAX_BODY_BYTES"),
    ("stream-messages", "POST", "/v1/chat/stream", {"json": {"messages": TOO_MANY}}, 413, "MAX_MESSAGES"),
    ("stream-length", "POST", "/v1/chat/stream", {"json": {"messages": TOO_LONG}}, 413, "MAX_MESSAGE_CHARS"),
    ("run-messages", "POST", "/runs/wait", _run(TOO_MANY), 413, "MAX_MESSAGES"),
    ("thread-run-length", "POST", "/threads/t-1/runs", _run(TOO_LONG), 413, "MAX_MESSAGE_CHARS"),
    ("run-stream-messages", "POST", "/runs/stream", _run(TOO_MANY), 413, "MAX_MESSAGES"),
    ("run-tokens", "POST", "/runs", _run([USER], context={"max_tokens": 51}), 422, "MAX_TOKENS"),
    ("run-metadata", "POST", "/runs", _run([USER], metadata=BIG_METADATA), 413, "MAX_METADATA_BYTES"),
    ("run-body", "POST", "/runs", _run([{"role": "user", "content": "z" * 5000}]), 413, "MAX_BODY_BYTES"),
    ("thread-metadata", "POST", "/threads", {"json": {"metadata": BIG_METADATA}}, 413, "MAX_METADATA_BYTES"),
    ("text-document", "POST", "/documents", {"json": {"text": "w" * 3000}}, 413, "RETRIEVAL__MAX_UPLOAD_BYTES"),
    ("document-metadata", "POST", "/documents", {"json": {"text": "w", "metadata": BIG_METADATA}}, 413, "MAX_METADATA_BYTES"),
    ("upload-count", "POST", "/documents", _files(10, 10, 10), 413, "RETRIEVAL__MAX_UPLOAD_FILES"),
    ("upload-size", "POST", "/documents", _files(3000), 413, "RETRIEVAL__MAX_UPLOAD_BYTES"),
    ("upload-body", "POST", "/documents", _files(80_000), 413, "RETRIEVAL__MAX_UPLOAD_FILES"),
    ("graph-hops", "GET", "/graph/entities/lamp%7Cproduct?hops=2", {}, 422, "LIMITS__MAX_GRAPH_HOPS"),
    ("graph-limit", "GET", "/graph/entities/lamp%7Cproduct?limit=6", {}, 422, "MAX_GRAPH_RESULTS"),
    ("graph-search-limit", "GET", "/graph/entities?q=lamp&limit=6", {}, 422, "MAX_GRAPH_RESULTS"),
]  # fmt: skip


def _message(response: httpx.Response) -> str:
    """The refusal's message, in the OpenAI envelope or the LangGraph protocol's `detail`."""
    body = response.json()
    return str(body["error"]["message"] if "error" in body else body["detail"])


@pytest.mark.parametrize(
    ("method", "path", "request_", "status", "setting"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_limit_is_refused_naming_its_setting(
    limited: str, method: str, path: str, request_: dict[str, Any], status: int, setting: str
) -> None:
    response = httpx.request(method, f"{limited}{path}", timeout=30, **request_)
    assert response.status_code == status, response.text
    message = _message(response)
    assert f"SWITCHBOARD_{setting}" in message or f"__{setting}" in message, message
    assert "at most" in message or "larger than" in message or "more than" in message


def test_refusals_use_the_envelope_of_their_endpoint_family(limited: str) -> None:
    chat = httpx.post(f"{limited}/v1/chat/completions", **_chat(TOO_MANY))
    assert chat.json()["error"]["param"] == "messages"
    assert chat.json()["error"]["code"] == "payload_too_large"
    run = httpx.post(f"{limited}/runs/wait", **_run(TOO_LONG))
    assert run.json()["param"] == "input.messages.0.content"
    assert run.json()["code"] == "payload_too_large"
    hops = httpx.get(f"{limited}/graph/entities/x?hops=2")
    assert hops.json()["error"]["code"] == "limit_exceeded"
    assert hops.json()["error"]["param"] == "hops"


def test_a_body_without_a_length_is_counted_as_it_arrives(limited: str) -> None:
    payload = json.dumps({"model": "switchboard", "messages": [USER], "pad": "p" * 6000}).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(payload), 1000):
            yield payload[start : start + 1000]

    response = httpx.post(
        f"{limited}/v1/chat/completions",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert "SWITCHBOARD_LIMITS__MAX_BODY_BYTES" in _message(response)


def test_what_is_within_the_limits_passes_them(limited: str) -> None:
    thread = httpx.post(f"{limited}/threads", json={"metadata": {"note": "short"}})
    assert thread.status_code == 200, thread.text
    # At the limits the graph look-up is let through (and finds the graph off here).
    lookup = httpx.get(f"{limited}/graph/entities/lamp%7Cproduct?hops=1&limit=5")
    assert lookup.status_code == 503
    search = httpx.get(f"{limited}/graph/entities?q=lamp&limit=5")
    assert search.status_code == 503
