"""The LangGraph Server API, driven only by the official `langgraph-sdk` client: assistants,
threads, runs streamed with several modes, in the background and joined, waited for, read back,
cancelled, and each multitask strategy; then resuming a dropped stream with `Last-Event-ID`."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from switchboard.webhooks import WebhookRefused, check_webhook
from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.service_runner import running_service

DIRECT: dict[str, Any] = {"route": "direct", "quality_check": False}


def _input(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


@pytest.fixture
async def client(backend: ScriptedBackend) -> AsyncIterator[LangGraphClient]:
    settings = make_settings(backend_entry("p", backend))
    with running_service(settings) as url:
        client = get_client(url=url, headers={"X-Switchboard-Tenant": f"t-{uuid.uuid4().hex[:8]}"})
        yield client
        await client.aclose()


async def test_assistants_threads_and_a_streamed_run(
    client: LangGraphClient, backend: ScriptedBackend
) -> None:
    assistants = await client.assistants.search()
    assert [a["graph_id"] for a in assistants] == ["switchboard", "research-crew"]
    by_id = await client.assistants.get(assistants[0]["assistant_id"])
    assert by_id["graph_id"] == "switchboard"
    schemas = await client.assistants.get_schemas("switchboard")
    assert "route" in schemas["context_schema"]["properties"]

    thread = await client.threads.create(metadata={"app": "tests"})
    assert thread["status"] == "idle" and thread["values"] is None
    backend.set_default(Reply(text="Red, green and blue."), model="generator")
    parts = [
        part
        async for part in client.runs.stream(
            thread["thread_id"],
            "switchboard",
            input=_input("Name three colours."),
            context=DIRECT,
            stream_mode=["values", "updates", "messages-tuple", "custom"],
        )
    ]
    kinds = [p.event for p in parts]
    assert kinds[0] == "metadata" and kinds[-1] == "end"
    trace_id = parts[0].data["trace_id"]  # the run's trace (tracing off: for its log lines)
    assert len(trace_id) == 32 and int(trace_id, 16)
    assert {"values", "updates", "messages", "custom"} <= set(kinds)
    tokens = "".join(p.data[0]["content"] for p in parts if p.event == "messages")
    assert tokens == "Red, green and blue."
    assert all(p.data[1]["langgraph_node"] == "generate" for p in parts if p.event == "messages")
    final = [p.data for p in parts if p.event == "values"][-1]
    assert final["answer"] == "Red, green and blue." and final["route"] == "direct"
    nodes = [next(iter(p.data)) for p in parts if p.event == "updates"]
    assert "generate" in nodes
    ids = [p.id for p in parts]
    assert all(ids) and len(set(ids)) == len(ids)  # every event is resumable by its id

    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["messages"][-1] == {
        "role": "assistant",
        "content": "Red, green and blue.",
    }
    history = await client.threads.get_history(thread["thread_id"], limit=5)
    assert (
        history
        and history[0]["checkpoint"]["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
    )
    found = await client.threads.search(metadata={"app": "tests"})
    assert [t["thread_id"] for t in found] == [thread["thread_id"]]
    assert found[0]["status"] == "idle"
    runs = await client.runs.list(thread["thread_id"])
    assert [r["status"] for r in runs] == ["success"]


async def test_background_run_joined_waited_and_read(
    client: LangGraphClient, backend: ScriptedBackend
) -> None:
    backend.set_default(Reply(text="One two three four", gap=0.05), model="generator")
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"],
        "switchboard",
        input=_input("Count to four."),
        context=DIRECT,
        stream_mode=["messages-tuple"],
    )
    assert run["status"] in ("pending", "running")
    joined = [p async for p in client.runs.join_stream(thread["thread_id"], run["run_id"])]
    assert "".join(p.data[0]["content"] for p in joined if p.event == "messages") == (
        "One two three four"
    )
    done = await client.runs.get(thread["thread_id"], run["run_id"])
    assert done["status"] == "success"
    assert (await client.runs.join(thread["thread_id"], run["run_id"]))["answer"] == (
        "One two three four"
    )
    waited = await client.runs.wait(
        thread["thread_id"], "switchboard", input=_input("Again."), context=DIRECT
    )
    assert isinstance(waited, dict) and waited["answer"] == "One two three four"
    assert len(waited["messages"]) == 4  # two turns on the thread
    stateless = await client.runs.wait(None, "switchboard", input=_input("Hi."), context=DIRECT)
    assert isinstance(stateless, dict) and stateless["answer"] == "One two three four"


async def test_cancel_a_running_run(client: LangGraphClient, backend: ScriptedBackend) -> None:
    backend.set_default(Reply(text="slow " * 200, gap=0.05), model="generator")
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "switchboard", input=_input("Go on."), context=DIRECT
    )
    await _until_status(client, thread["thread_id"], run["run_id"], "running")
    await client.runs.cancel(thread["thread_id"], run["run_id"])
    await _until_status(client, thread["thread_id"], run["run_id"], "interrupted")
    requests = len(backend.requests)
    await asyncio.sleep(0.5)
    assert len(backend.requests) == requests  # nothing more was asked of the backend
    with pytest.raises(NotFoundError):  # a finished run cannot be cancelled
        await client.runs.cancel(thread["thread_id"], run["run_id"])
    # The thread is free again (`interrupted`: its last checkpoint has nodes still to run).
    assert (await client.threads.get(thread["thread_id"]))["status"] == "interrupted"


async def test_multitask_strategies(client: LangGraphClient, backend: ScriptedBackend) -> None:
    backend.set_default(Reply(text="slow " * 100, gap=0.03), model="generator")
    thread_id = (await client.threads.create())["thread_id"]

    async def start(strategy: str) -> dict[str, Any]:
        run: dict[str, Any] = await client.runs.create(
            thread_id,
            "switchboard",
            input=_input(f"{strategy}?"),
            context=DIRECT,
            multitask_strategy=strategy,  # type: ignore[arg-type]
        )
        return run

    first = await start("enqueue")
    await _until_status(client, thread_id, first["run_id"], "running")
    with pytest.raises(ConflictError):
        await start("reject")
    queued = await start("enqueue")  # waits for the first
    assert (await client.runs.get(thread_id, queued["run_id"]))["status"] == "pending"
    interrupting = await start("interrupt")  # cancels both, keeps what they wrote
    await _until_status(client, thread_id, first["run_id"], "interrupted")
    await _until_status(client, thread_id, queued["run_id"], "interrupted")
    await _until_status(client, thread_id, interrupting["run_id"], "running")
    rolling = await start("rollback")  # cancels the interrupting run and deletes it
    await _until_status(client, thread_id, rolling["run_id"], "running")
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, interrupting["run_id"])
    await client.runs.cancel(thread_id, rolling["run_id"], wait=True)
    statuses = {r["run_id"]: r["status"] for r in await client.runs.list(thread_id)}
    assert statuses == {
        first["run_id"]: "interrupted",
        queued["run_id"]: "interrupted",
        rolling["run_id"]: "interrupted",
    }


async def test_bad_requests(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.get("no-such-workflow")
    with pytest.raises(NotFoundError):
        await client.threads.get(str(uuid.uuid4()))
    thread = await client.threads.create()
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread["thread_id"])
    same = await client.threads.create(thread_id=thread["thread_id"], if_exists="do_nothing")
    assert same["thread_id"] == thread["thread_id"]
    with pytest.raises(UnprocessableEntityError) as invalid_mode:
        await client.runs.create(
            thread["thread_id"],
            "switchboard",
            input=_input("x"),
            stream_mode="tokens",  # type: ignore[arg-type]
        )
    assert "stream_mode" in invalid_mode.value.response.json()["detail"]
    with pytest.raises(UnprocessableEntityError) as invalid_input:
        await client.runs.create(thread["thread_id"], "switchboard", input={"messages": [{}]})
    assert "messages.0" in invalid_input.value.response.json()["detail"]
    with pytest.raises(NotFoundError):
        await client.runs.create(str(uuid.uuid4()), "switchboard", input=_input("x"))
    with pytest.raises(NotFoundError):
        await client.runs.get(thread["thread_id"], str(uuid.uuid4()))


async def test_resume_a_dropped_stream_with_last_event_id(
    client: LangGraphClient, backend: ScriptedBackend
) -> None:
    """Dropping the connection mid-stream and reconnecting with the last id seen gives exactly
    the uninterrupted stream: nothing twice, nothing missing."""
    backend.set_default(Reply(text=" ".join(f"w{i}" for i in range(40)), gap=0.02), "generator")
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(
        thread_id,
        "switchboard",
        input=_input("Forty words."),
        context=DIRECT,
        stream_mode=["messages-tuple", "updates"],
    )
    base = str(client.http.client.base_url)
    headers = dict(client.http.client.headers)
    path = f"{base}/threads/{thread_id}/runs/{run['run_id']}/stream"
    first: list[tuple[str, str]] = []
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        async with http.stream("GET", path) as response:
            async for event in _sse(response):
                first.append(event)
                if len(first) == 12:
                    break  # the connection is dropped here, mid-run
        rest = []
        resume = {"Last-Event-ID": first[-1][0]}
        async with http.stream("GET", path, headers=resume) as response:
            rest = [event async for event in _sse(response)]
        async with http.stream("GET", path) as response:
            whole = [event async for event in _sse(response)]
        malformed = await http.get(path, headers={"Last-Event-ID": "abc"})
    assert first + rest == whole
    assert malformed.status_code == 422 and "Last-Event-ID" in malformed.json()["detail"]
    assert whole[-1][1].startswith("end")


async def _sse(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(id, "event data") per SSE event."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            yield fields["id"], f"{fields['event']} {fields['data']}"
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


async def _until_status(client: LangGraphClient, thread_id: str, run_id: str, status: str) -> None:
    for _ in range(200):
        if (await client.runs.get(thread_id, run_id))["status"] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never became {status}")


async def test_idempotency_key_returns_the_same_run(
    client: LangGraphClient, backend: ScriptedBackend
) -> None:
    backend.set_default(Reply(text="Once."), model="generator")
    thread_id = (await client.threads.create())["thread_id"]
    key = {"Idempotency-Key": uuid.uuid4().hex}

    async def create() -> dict[str, Any]:
        run: dict[str, Any] = await client.runs.create(
            thread_id, "switchboard", input=_input("Once?"), context=DIRECT, headers=key
        )
        return run

    first, racing = await asyncio.gather(create(), create())  # two at once: one run
    again = await create()  # and a retry later
    assert racing["run_id"] == first["run_id"] == again["run_id"]
    await client.runs.join(thread_id, first["run_id"])
    assert [r["run_id"] for r in await client.runs.list(thread_id)] == [first["run_id"]]
    generations = [r for r in backend.requests if r.get("model") == "generator"]
    assert len(generations) == 1


class _Receiver:
    """A real HTTP server that records webhook calls, failing the first `fail` of them."""

    def __init__(self, fail: int) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self._fail = fail

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        lines = [line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line]
        headers = {name.lower(): value for name, value in lines}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.calls.append((headers, body))
        status = "500 Internal Server Error" if len(self.calls) <= self._fail else "204 No Content"
        writer.write(f"HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()


async def test_webhook_is_signed_and_retried(backend: ScriptedBackend) -> None:
    receiver = _Receiver(fail=1)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = make_settings(
        backend_entry("p", backend),
        runtime={"webhook_secret": "s3cret", "webhook_private_hosts": True},  # a loopback receiver
    )
    backend.set_default(Reply(text="Done."), model="generator")
    try:
        with running_service(settings) as url:
            client = get_client(url=url)
            thread_id = (await client.threads.create())["thread_id"]
            run = await client.runs.create(
                thread_id,
                "switchboard",
                input=_input("Call me back."),
                context=DIRECT,
                webhook=f"http://127.0.0.1:{port}/hook",
            )
            for _ in range(100):
                if len(receiver.calls) >= 2:
                    break
                await asyncio.sleep(0.1)
            await client.aclose()
    finally:
        server.close()
        await server.wait_closed()
    assert len(receiver.calls) == 2  # the first answered 500, so it was sent again
    headers, body = receiver.calls[-1]
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["x-switchboard-signature"] == f"sha256={expected}"
    sent = json.loads(body)
    assert sent["run_id"] == run["run_id"] and sent["status"] == "success"


async def test_full_queue_and_time_budget(backend: ScriptedBackend) -> None:
    """No worker and room for one run: the second is refused with 503 and Retry-After. With a
    worker and a 1 s budget, a slow run ends as `timeout` with an error event."""
    settings = make_settings(
        backend_entry("p", backend), runtime={"worker": False, "max_queued": 1}
    )
    with running_service(settings) as url:
        client = get_client(url=url)
        thread_id = (await client.threads.create())["thread_id"]
        await client.runs.create(thread_id, "switchboard", input=_input("one"), context=DIRECT)
        async with httpx.AsyncClient(base_url=url) as http:
            refused = await http.post(
                f"/threads/{thread_id}/runs",
                json={"assistant_id": "switchboard", "input": _input("two")},
            )
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1" and refused.json()["code"] == "queue_full"
        await client.aclose()
    backend.set_default(Reply(text="slow " * 100, gap=0.05), model="generator")
    settings = make_settings(backend_entry("p", backend), runtime={"run_timeout_s": 1})
    with running_service(settings) as url:
        client = get_client(url=url)
        thread_id = (await client.threads.create())["thread_id"]
        parts = [
            p
            async for p in client.runs.stream(
                thread_id, "switchboard", input=_input("Slowly."), context=DIRECT
            )
        ]
        assert parts[-2].event == "error" and "time budget" in parts[-2].data["message"]
        runs = await client.runs.list(thread_id)
        assert runs[0]["status"] == "timeout"
        await client.aclose()


async def test_webhooks_into_the_service_s_own_network_are_refused(
    backend: ScriptedBackend,
) -> None:
    """By default a caller cannot make the service call loopback, private or link-local
    addresses (a cloud's metadata service): 422 naming the setting, and nothing is called."""
    receiver = _Receiver(fail=0)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with running_service(make_settings(backend_entry("p", backend))) as url:
            client = get_client(url=url)
            thread_id = (await client.threads.create())["thread_id"]
            for hook in (
                f"http://127.0.0.1:{port}/hook",
                f"http://localhost:{port}/hook",
                "http://169.254.169.254/latest/meta-data/",
                "http://10.1.2.3/hook",
                "http://[::1]/hook",
            ):
                with pytest.raises(httpx.HTTPStatusError) as refused:
                    await client.runs.create(
                        thread_id, "switchboard", input=_input("Hi."), context=DIRECT, webhook=hook
                    )
                assert refused.value.response.status_code == 422, hook
                assert "WEBHOOK_PRIVATE_HOSTS" in refused.value.response.text
            assert await client.runs.list(thread_id) == []
            await client.aclose()
    finally:
        server.close()
        await server.wait_closed()
    assert receiver.calls == []


async def test_a_public_webhook_address_passes_the_check() -> None:
    await check_webhook("https://93.184.215.14/hook", allow_private=False)
    with pytest.raises(WebhookRefused):
        await check_webhook("http://192.168.1.10/hook", allow_private=False)
    await check_webhook("http://192.168.1.10/hook", allow_private=True)
