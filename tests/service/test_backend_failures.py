"""Backend failures as a client sees them: failover before the first token, an error event
after it, the circuit breaker, and cancellation of the backend request when the client leaves."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.service_runner import running_service
from tests.sse import iter_events, stream_turn

# Route pinned and judge off: only the generator call reaches the backends, so request counts
# and circuits concern that call alone.
ISOLATED: dict[str, Any] = {"route": "direct", "quality_check": False}


def _two_backends(primary: ScriptedBackend, spare: ScriptedBackend, **llm: Any) -> Any:
    settings = make_settings(
        backend_entry("primary", primary), backend_entry("spare", spare), llm=llm
    )
    return running_service(settings)


def test_http_500_fails_over_to_the_next_backend(
    backend: ScriptedBackend, spare: ScriptedBackend
) -> None:
    backend.set_default(Reply(failure="http500"), model="generator")
    spare.set_default(Reply(text="from the spare"), model="generator")
    with _two_backends(backend, spare, max_retries=2) as url:
        events = stream_turn(url, "hi", **ISOLATED)
    assert events[-1].kind == "end"
    assert events[-1].data["output"]["answer"] == "from the spare"
    assert backend.request_count("generator") == 3  # the first try and two retries
    assert spare.request_count("generator") == 1


def test_a_hang_before_the_first_token_fails_over(
    backend: ScriptedBackend, spare: ScriptedBackend
) -> None:
    backend.set_default(Reply(failure="hang"), model="generator")
    spare.set_default(Reply(text="quick spare"), model="generator")
    with _two_backends(backend, spare, first_token_timeout=0.5) as url:
        started = time.monotonic()
        events = stream_turn(url, "hi", **ISOLATED)
        elapsed = time.monotonic() - started
    assert events[-1].data["output"]["answer"] == "quick spare"
    assert elapsed < 3
    assert backend.request_count("generator") == 1, "a timed-out backend is not retried"


def test_429_is_retried_on_the_same_backend(
    backend: ScriptedBackend, spare: ScriptedBackend
) -> None:
    backend.enqueue(Reply(failure="http429"), model="generator")
    backend.set_default(Reply(text="second try"), model="generator")
    with _two_backends(backend, spare) as url:
        events = stream_turn(url, "hi", **ISOLATED)
    assert events[-1].data["output"]["answer"] == "second try"
    assert backend.request_count("generator") == 2
    assert spare.request_count("generator") == 0


def test_mid_stream_drop_ends_with_an_error_event_within_a_second(
    backend: ScriptedBackend, spare: ScriptedBackend
) -> None:
    backend.set_default(
        Reply(text="one two three four five", failure="drop", fail_after=3, gap=0.05),
        model="generator",
    )
    with _two_backends(backend, spare) as url:
        events = stream_turn(url, "hi", **ISOLATED)
    assert [e.kind for e in events] == ["metadata", "route", "token", "token", "token", "error"]
    error = events[-1]
    assert error.data["code"] == "stream_interrupted"
    assert error.at - events[-2].at < 1.0
    assert spare.request_count("generator") == 0, "a started answer is not failed over"


def test_mid_stream_silence_ends_with_an_error_after_the_idle_timeout(
    backend: ScriptedBackend, spare: ScriptedBackend
) -> None:
    backend.set_default(
        Reply(text="one two three", failure="hang_mid", fail_after=2), model="generator"
    )
    with _two_backends(backend, spare, idle_timeout=0.5) as url:
        events = stream_turn(url, "hi", **ISOLATED)
    assert [e.kind for e in events][-3:] == ["token", "token", "error"]
    assert events[-1].data["code"] == "stream_interrupted"
    assert 0.4 < events[-1].at - events[-2].at < 1.5


def test_openai_client_raises_on_a_mid_stream_drop(
    backend: ScriptedBackend, spare: ScriptedBackend, openai_client: Callable[..., openai.OpenAI]
) -> None:
    backend.set_default(Reply(text="a b c d", failure="drop", fail_after=2), model="generator")
    with _two_backends(backend, spare) as url:
        client = openai_client(url)
        stream = client.chat.completions.create(
            model="switchboard",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_body=ISOLATED,
        )
        received: list[str] = []
        with pytest.raises(openai.APIError, match="stream broke"):
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)
    assert received == ["a", " b"]


def test_circuit_opens_then_closes(backend: ScriptedBackend, spare: ScriptedBackend) -> None:
    backend.set_default(Reply(failure="http500"), model="generator")
    spare.set_default(Reply(text="spare"), model="generator")
    with _two_backends(
        backend, spare, max_retries=0, breaker_threshold=2, breaker_reset=0.5
    ) as url:
        for _ in range(2):
            assert stream_turn(url, "hi", **ISOLATED)[-1].data["output"]["answer"] == "spare"
        assert backend.request_count("generator") == 2
        circuit = httpx.get(f"{url}/readyz").json()["backends"]["primary"]["circuit"]
        assert circuit == "open"
        # Open: the primary is not even tried.
        assert stream_turn(url, "hi", **ISOLATED)[-1].data["output"]["answer"] == "spare"
        assert backend.request_count("generator") == 2
        time.sleep(0.6)
        backend.set_default(Reply(text="primary is back"), model="generator")
        assert httpx.get(f"{url}/readyz").json()["backends"]["primary"]["circuit"] == "half_open"
        answer = stream_turn(url, "hi", **ISOLATED)[-1].data["output"]["answer"]
        assert answer == "primary is back"
        assert httpx.get(f"{url}/readyz").json()["backends"]["primary"]["circuit"] == "closed"


@pytest.mark.parametrize("reply", [Reply(text="w " * 100, gap=0.05), Reply(failure="hang")])
def test_client_disconnect_cancels_the_backend_request(
    service: str, backend: ScriptedBackend, reply: Reply
) -> None:
    backend.set_default(reply, model="generator")
    body = {"messages": [{"role": "user", "content": "hi"}], **ISOLATED}
    with httpx.stream("POST", f"{service}/v1/chat/stream", json=body, timeout=10) as response:
        events = iter_events(response)
        wanted = "token" if reply.failure is None else "route"
        for event in events:
            if event.kind == wanted:
                break
        deadline = time.monotonic() + 0.3
        while backend.active_streams == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert backend.active_streams == 1
    closed_at = time.monotonic()
    deadline = closed_at + 2
    while not backend.cancellations and time.monotonic() < deadline:
        time.sleep(0.01)
    assert backend.cancellations, "the backend request was not cancelled"
    assert backend.cancellations[0] - closed_at < 1.0
    assert backend.active_streams == 0


def test_openai_stream_disconnect_cancels_the_backend_request(
    service: str, backend: ScriptedBackend, openai_client: Callable[..., openai.OpenAI]
) -> None:
    backend.set_default(Reply(text="w " * 100, gap=0.05), model="generator")
    client = openai_client(service)
    stream = client.chat.completions.create(
        model="switchboard",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_body=ISOLATED,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    closed_at = time.monotonic()
    while not backend.cancellations and time.monotonic() < closed_at + 2:
        time.sleep(0.01)
    assert backend.cancellations and backend.cancellations[0] - closed_at < 1.0


def test_backend_down_at_start_up(openai_client: Callable[..., openai.OpenAI]) -> None:
    dead = {"name": "dead", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    with running_service(make_settings(dead)) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["backends"]["dead"]["status"] == "down"
        body = {"model": "switchboard", "messages": [{"role": "user", "content": "hi"}]}
        for stream in (False, True):
            response = httpx.post(f"{url}/v1/chat/completions", json={**body, "stream": stream})
            assert response.status_code == 503
            error = response.json()["error"]
            assert error["code"] == "backend_unavailable"
            assert "dead" in error["message"]
        client = openai_client(url, max_retries=0)
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(
                model="switchboard", messages=[{"role": "user", "content": "hi"}]
            )
        assert caught.value.status_code == 503
