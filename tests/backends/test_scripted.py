"""Checks that the scripted backend behaves like an OpenAI server, as real clients see it."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.backends import DEFAULT_TEXT, Reply, ScriptedBackend

REPO_ROOT = Path(__file__).resolve().parents[2]
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "say something nice"}]


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedBackend]:
    with ScriptedBackend() as backend:
        yield backend


@pytest.fixture
def backend(server: ScriptedBackend) -> Iterator[ScriptedBackend]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def client(backend: ScriptedBackend) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=backend.url, api_key="x", max_retries=0) as sync_client:
        yield sync_client


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def sse_events(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        if line.startswith("data: "):
            yield line[len("data: ") :]


# -- replies and streaming -------------------------------------------------------------------


def test_default_pieces_keep_leading_space_and_rejoin() -> None:
    assert Reply(text="Hi there").pieces() == ["Hi", " there"]
    assert "".join(Reply(text="  a  b\n c ").pieces()) == "  a  b\n c "
    assert Reply(text="x", tokens=["x", "y"]).pieces() == ["x", "y"]


def test_stream_sends_one_chunk_per_piece_in_order(
    backend: ScriptedBackend, client: openai.OpenAI
) -> None:
    pieces = ["Hel", "lo", ",", " wor", "ld", " ✓"]
    backend.enqueue(Reply(tokens=pieces))
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))

    first, *content, last = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    assert [chunk.choices[0].delta.content for chunk in content] == pieces
    assert all(chunk.choices[0].finish_reason is None for chunk in content)
    assert last.choices[0].finish_reason == "stop"
    assert last.choices[0].delta.content is None
    assert {chunk.id for chunk in chunks} == {first.id}
    assert all(chunk.object == "chat.completion.chunk" and chunk.model == "m" for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)


async def test_stream_chunks_arrive_one_by_one(backend: ScriptedBackend) -> None:
    backend.enqueue(Reply(text="a b c d", ttft=0.05, gap=0.04))
    async with openai.AsyncOpenAI(base_url=backend.url, api_key="x", max_retries=0) as aclient:
        started = time.monotonic()
        stream = await aclient.chat.completions.create(model="m", messages=USER, stream=True)
        arrivals = []
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append((chunk.choices[0].delta.content, time.monotonic() - started))
    assert [piece for piece, _ in arrivals] == ["a", " b", " c", " d"]
    assert arrivals[0][1] >= 0.05
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(arrivals)]
    assert all(gap >= 0.03 for gap in gaps), gaps


def test_raw_sse_framing_and_done(backend: ScriptedBackend) -> None:
    backend.enqueue(Reply(text="one two"))
    body = {
        "model": "m",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", f"{backend.url}/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(response.iter_lines()))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert [c["choices"][0]["delta"] for c in chunks[:-1]] == [
        {"role": "assistant", "content": ""},
        {"content": "one"},
        {"content": " two"},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_non_stream_completion_format(backend: ScriptedBackend) -> None:
    backend.enqueue(Reply(text="Hi there friend"))
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hello you"}]},
    ]
    response = httpx.post(
        f"{backend.url}/chat/completions", json={"model": "gpt-x", "messages": messages}
    )
    assert response.status_code == 200
    data = response.json()
    assert set(data) >= {"id", "object", "created", "model", "choices", "usage"}
    assert data["object"] == "chat.completion"
    assert data["model"] == "gpt-x"
    assert isinstance(data["created"], int)
    assert data["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi there friend"},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert data["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


def test_keep_alive_requests_do_not_stall(backend: ScriptedBackend) -> None:
    # Guards TCP_NODELAY: without it each response costs ~40 ms of Nagle + delayed ACK.
    with httpx.Client() as http:
        http.get(f"{backend.url}/models")
        started = time.monotonic()
        for _ in range(5):
            http.post(f"{backend.url}/chat/completions", json={"model": "m", "messages": USER})
        assert (time.monotonic() - started) / 5 < 0.02


def test_usage_on_and_off(backend: ScriptedBackend, client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="m", messages=USER)
    assert completion.usage is not None and completion.usage.completion_tokens == 5

    backend.enqueue(Reply(usage=False))
    assert client.chat.completions.create(model="m", messages=USER).usage is None

    # Streams carry usage only when asked for, and only if the reply allows it.
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)
    backend.enqueue(Reply(usage=False))
    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)


def test_tool_calls_non_stream_and_stream(backend: ScriptedBackend, client: openai.OpenAI) -> None:
    calls: list[dict[str, Any]] = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "search", "arguments": '{"q": "llamas"}'},
        },
        {"function": {"name": "clock", "arguments": {}}},
    ]
    backend.enqueue(Reply(tool_calls=calls))
    completion = client.chat.completions.create(model="m", messages=USER)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    got = [
        (c.id, c.type, c.function.name, c.function.arguments)  # type: ignore[union-attr]
        for c in choice.message.tool_calls
    ]
    assert got == [
        ("call_1", "function", "search", '{"q": "llamas"}'),
        ("call_scripted_1", "function", "clock", "{}"),
    ]

    backend.enqueue(Reply(text="Let me look.", tool_calls=calls[:1]))
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert content == "Let me look."
    tool_chunks = [c for c in chunks if c.choices[0].delta.tool_calls]
    assert len(tool_chunks) == 1
    delta_call = tool_chunks[0].choices[0].delta.tool_calls[0]  # type: ignore[index]
    assert (delta_call.index, delta_call.id) == (0, "call_1")
    assert delta_call.function is not None and delta_call.function.name == "search"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert DEFAULT_TEXT not in content


# -- embeddings and models -------------------------------------------------------------------


def test_embeddings_are_deterministic_unit_vectors(
    backend: ScriptedBackend, client: openai.OpenAI
) -> None:
    # The openai client asks for base64 by default; ask for floats explicitly as well.
    first = client.embeddings.create(model="emb", input=["alpha", "beta"])
    again = client.embeddings.create(model="emb", input="alpha", encoding_format="float")
    vectors = [item.embedding for item in first.data]
    assert [len(v) for v in vectors] == [384, 384]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
    assert vectors[0] != vectors[1]
    pairs = zip(vectors[0], again.data[0].embedding, strict=True)
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in pairs)
    assert first.usage.prompt_tokens == 2
    assert [body["path"] for body in backend.requests] == ["/v1/embeddings"] * 2

    small = client.embeddings.create(model="emb", input="alpha", dimensions=8)
    assert len(small.data[0].embedding) == 8
    with ScriptedBackend(embedding_dim=16) as other:
        response = httpx.post(f"{other.url}/embeddings", json={"model": "e", "input": "alpha"})
        assert len(response.json()["data"][0]["embedding"]) == 16


def test_models_lists_defaults(backend: ScriptedBackend, client: openai.OpenAI) -> None:
    backend.set_default(Reply(text="x"), model="big")
    assert {model.id for model in client.models.list()} == {"scripted", "big"}


# -- failures --------------------------------------------------------------------------------


def test_http_errors(backend: ScriptedBackend, client: openai.OpenAI) -> None:
    backend.enqueue(Reply(failure="http500"))
    with pytest.raises(openai.InternalServerError) as server_error:
        client.chat.completions.create(model="m", messages=USER)
    assert server_error.value.status_code == 500

    backend.enqueue(Reply(failure="http429", retry_after=3))
    with pytest.raises(openai.RateLimitError) as rate_limited:
        client.chat.completions.create(model="m", messages=USER, stream=True)
    assert rate_limited.value.status_code == 429
    assert rate_limited.value.response.headers["retry-after"] == "3"
    assert rate_limited.value.code == "rate_limit_exceeded"


def test_drop_mid_stream_is_a_client_side_error(backend: ScriptedBackend) -> None:
    backend.enqueue(Reply(text="a b c d e", failure="drop", fail_after=2))
    body = {"model": "m", "messages": USER, "stream": True}
    received = []
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):  # noqa: SIM117
        with httpx.stream("POST", f"{backend.url}/chat/completions", json=body) as response:
            for event in sse_events(response.iter_lines()):
                received.append(json.loads(event)["choices"][0]["delta"].get("content"))
    assert received == ["", "a", " b"]
    assert backend.cancellations == []


def test_drop_through_openai_and_non_stream(
    backend: ScriptedBackend, client: openai.OpenAI
) -> None:
    backend.enqueue(Reply(text="a b c", failure="drop", fail_after=1))
    pieces = []
    # openai 3 wraps a mid-stream drop in APIConnectionError; openai 2 (CrewAI's pin) lets
    # httpx's error through.
    with pytest.raises((openai.APIConnectionError, httpx.RemoteProtocolError)):
        for chunk in client.chat.completions.create(model="m", messages=USER, stream=True):
            pieces.append(chunk.choices[0].delta.content)
    assert pieces == ["", "a"]

    backend.enqueue(Reply(failure="drop"))
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        httpx.post(f"{backend.url}/chat/completions", json={"model": "m", "messages": USER})


def test_hang_until_client_timeout_records_cancellation(
    backend: ScriptedBackend, client: openai.OpenAI
) -> None:
    backend.enqueue(Reply(failure="hang"))
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=USER, stream=True, timeout=0.2)
    gave_up = time.monotonic()
    wait_until(lambda: len(backend.cancellations) == 1)
    assert abs(backend.cancellations[0] - gave_up) < 0.1
    wait_until(lambda: backend.active_streams == 0)


def test_hang_mid_sends_pieces_then_waits_for_disconnect(backend: ScriptedBackend) -> None:
    backend.enqueue(Reply(text="a b c", failure="hang_mid", fail_after=2, gap=0.01))
    body = {"model": "m", "messages": USER, "stream": True}
    received: list[str] = []
    with httpx.stream("POST", f"{backend.url}/chat/completions", json=body) as response:
        # Pull events by hand: abandoning httpx's line iterator would close the connection.
        events = sse_events(response.iter_lines())
        while len(received) < 3:
            received.append(json.loads(next(events))["choices"][0]["delta"]["content"])
        time.sleep(0.1)
        assert backend.active_streams == 1
        assert backend.cancellations == []
        closed = time.monotonic()
    wait_until(lambda: len(backend.cancellations) == 1)
    assert received == ["", "a", " b"]
    assert 0 <= backend.cancellations[0] - closed < 0.1
    wait_until(lambda: backend.active_streams == 0)


async def test_cancelled_async_stream_is_recorded(backend: ScriptedBackend) -> None:
    backend.enqueue(Reply(text="x " * 200, gap=0.01))
    async with openai.AsyncOpenAI(base_url=backend.url, api_key="x", max_retries=0) as aclient:
        stream = await aclient.chat.completions.create(model="m", messages=USER, stream=True)
        async for _ in stream:
            if backend.active_streams == 1:
                break
        await stream.close()
        closed = time.monotonic()
        while not backend.cancellations:
            await asyncio.sleep(0.005)
    assert backend.cancellations[0] - closed < 0.1


# -- scripting -------------------------------------------------------------------------------


def test_per_model_queues_and_defaults(backend: ScriptedBackend, client: openai.OpenAI) -> None:
    def ask(model: str) -> str | None:
        return client.chat.completions.create(model=model, messages=USER).choices[0].message.content

    backend.set_default(Reply(text="global default"))
    backend.set_default(Reply(text="small default"), model="small")
    backend.enqueue(Reply(text="any 1"))
    backend.enqueue(Reply(text="any 2"))
    backend.enqueue(Reply(text="small 1"), model="small")

    assert ask("small") == "small 1"  # model queue beats the any-model queue
    assert ask("big") == "any 1"
    assert ask("small") == "any 2"  # any-model queue beats the model default
    assert ask("small") == "small default"
    assert ask("big") == "global default"
    assert backend.request_count() == 5
    assert backend.request_count("small") == 3
    assert backend.request_count(path="/v1/embeddings") == 0

    backend.reset()
    assert ask("small") == DEFAULT_TEXT
    assert backend.request_count() == 1


def test_enqueue_from_another_thread_during_concurrent_streams(backend: ScriptedBackend) -> None:
    async def run_streams() -> list[str]:
        async with openai.AsyncOpenAI(base_url=backend.url, api_key="x", max_retries=0) as aclient:

            async def one() -> str:
                stream = await aclient.chat.completions.create(
                    model="m",
                    messages=USER,
                    stream=True,
                )
                return "".join([c.choices[0].delta.content or "" async for c in stream])

            return await asyncio.gather(*(one() for _ in range(20)))

    def feed() -> None:
        for i in range(20):
            backend.enqueue(Reply(text=f"r{i}", ttft=0.01))

    feeder = threading.Thread(target=feed)
    feeder.start()
    feeder.join()
    results = asyncio.run(run_streams())
    assert sorted(results) == sorted(f"r{i}" for i in range(20))
    # The server finishes each response just after the client has read its last byte.
    wait_until(lambda: backend.active_streams == 0)


def test_stop_with_request_in_flight_is_prompt() -> None:
    backend = ScriptedBackend().start()
    backend.enqueue(Reply(failure="hang"))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(f"{backend.url}/chat/completions", json={"model": "m", "messages": USER})
        except httpx.HTTPError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    wait_until(lambda: backend.request_count() == 1)
    started = time.monotonic()
    backend.stop()
    assert time.monotonic() - started < 1.5
    caller.join(2)
    assert len(errors) == 1
    assert backend.cancellations == []
    backend.stop()  # idempotent


def test_cli_serves_benchmark_tokens() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.backends.scripted",
            "--port",
            "0",
            "--text-tokens",
            "4",
            "--ttft-ms",
            "5",
            "--gap-ms",
            "1",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().split()
        assert ready[0] == "READY"
        with openai.OpenAI(base_url=ready[1], api_key="x", max_retries=0) as cli_client:
            chunks = cli_client.chat.completions.create(model="bench", messages=USER, stream=True)
            pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
        assert pieces == ["t0", " t1", " t2", " t3"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        if process.stdout is not None:
            process.stdout.close()
