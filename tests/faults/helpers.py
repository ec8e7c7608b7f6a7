"""What the fault tests share: timed recovery, turns and look-ups over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx

from tests.sse import Received, iter_events

T = TypeVar("T")

TENANT = "faults"
HEADERS = {"X-Switchboard-Tenant": TENANT}
# Route pinned and judge off, so that each turn makes one generator call.
DIRECT: dict[str, Any] = {"route": "direct", "quality_check": False}


def recovery_seconds(succeeds: Callable[[], bool], timeout: float = 60.0) -> float:
    """Seconds from now (the fault has just been removed) until `succeeds()` first returns True;
    fails the test if it does not within `timeout`."""
    started = time.monotonic()
    while not succeeds():
        assert time.monotonic() - started < timeout, f"no recovery in {timeout:g} s"
        time.sleep(0.05)
    return time.monotonic() - started


def start_run(url: str, thread_id: str, text: str) -> str:
    """A background run on the thread (LangGraph's runs API, judge off): its id."""
    run = httpx.post(
        f"{url}/threads/{thread_id}/runs",
        json={
            "assistant_id": "switchboard",
            "input": {"messages": [{"role": "user", "content": text}]},
            "context": {"quality_check": False},
        },
        headers=HEADERS,
    )
    assert run.status_code == 200, run.text
    run_id: str = run.json()["run_id"]
    return run_id


def turn(url: str, text: str, thread_id: str, **options: Any) -> tuple[int, list[Received]]:
    """One turn on the native stream: its status and, when 200, every event."""
    body = {"messages": [{"role": "user", "content": text}], "thread_id": thread_id, **options}
    with httpx.stream(
        "POST", f"{url}/v1/chat/stream", json=body, headers=HEADERS, timeout=30
    ) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, []
        return 200, list(iter_events(response))


def turn_ends(url: str, text: str, thread_id: str, **options: Any) -> bool:
    """Whether a turn streams to its `end` event (the probe of recovery)."""
    try:
        status, events = turn(url, text, thread_id, **options)
    except httpx.HTTPError:
        return False
    return status == 200 and events[-1].kind == "end"


def messages(url: str, thread_id: str) -> list[tuple[str, str]]:
    """The thread's conversation as (role, content) pairs."""
    response = httpx.get(f"{url}/threads/{thread_id}/state", headers=HEADERS, timeout=10)
    assert response.status_code == 200, response.text
    return [(m["role"], m["content"]) for m in response.json()["values"]["messages"]]


def memories(url: str, user: str) -> list[str]:
    response = httpx.get(f"{url}/users/{user}/memories", headers=HEADERS, timeout=10)
    assert response.status_code == 200, response.text
    return [m["text"] for m in response.json()["memories"]]


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait (bounded) for something that happens in the background, such as learning a fact."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


class Servers:
    """Starts and stops embedded servers (Redis, Neo4j) from a synchronous test, on one event
    loop of its own, so that the same server can be stopped and started again."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()

    def run(self, step: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(step)

    def close(self) -> None:
        self._loop.close()
