"""A client that goes away in mid-stream: the backend request is cancelled, the run is recorded
as interrupted rather than left running, the thread keeps what it had, and the next turn on the
same thread is served at once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.faults.conftest import FaultTable
from tests.faults.helpers import (
    DIRECT,
    HEADERS,
    memories,
    messages,
    recovery_seconds,
    turn,
    turn_ends,
    wait_for,
)
from tests.service_runner import running_service
from tests.sse import iter_events

FACT = "Ada is on call on Tuesdays."


@pytest.fixture
def service(backend: ScriptedBackend, redis_url: str) -> Iterator[str]:
    backend.set_default(Reply(text='{"facts": []}'), model="extractor")
    with running_service(
        make_settings(backend_entry("only", backend), redis={"url": redis_url})
    ) as url:
        yield url


def test_client_disconnects_mid_stream(
    service: str, backend: ScriptedBackend, fault_table: FaultTable
) -> None:
    """Shows: after three tokens the client closes the stream; the backend sees its request
    cancelled, the run is `interrupted` (not `running`, not `success`), the earlier turn and
    the user's memory are kept, and a new turn on the same thread ends `end`."""
    ids = uuid.uuid4().hex[:8]
    thread, user = f"t-{ids}", f"u-{ids}"
    backend.set_default(Reply(text="Noted."), model="generator")
    backend.enqueue(Reply(text=json.dumps({"facts": [FACT]})), model="extractor")
    status, events = turn(service, "I am on call on Tuesdays.", thread, user=user, **DIRECT)
    assert status == 200 and events[-1].kind == "end"
    wait_for(lambda: memories(service, user) == [FACT])

    backend.set_default(Reply(text="w " * 100, gap=0.05), model="generator")
    body = {
        "messages": [{"role": "user", "content": "Talk."}],
        "thread_id": thread,
        "user": user,
        **DIRECT,
    }
    with httpx.stream(
        "POST", f"{service}/v1/chat/stream", json=body, headers=HEADERS, timeout=30
    ) as response:
        run_id = response.headers["X-Run-Id"]
        tokens = 0
        for event in iter_events(response):
            tokens += event.kind == "token"
            if tokens == 3:
                break
    wait_for(lambda: len(backend.cancellations) == 1)

    backend.set_default(Reply(text="Here again."), model="generator")
    recovery = recovery_seconds(lambda: turn_ends(service, "Back?", thread, user=user, **DIRECT))

    runs = httpx.get(f"{service}/threads/{thread}/runs", headers=HEADERS, params={"limit": 10})
    statuses = {r["run_id"]: r["status"] for r in runs.json()}
    assert statuses[run_id] == "interrupted", statuses
    said = messages(service, thread)
    assert said[:2] == [("user", "I am on call on Tuesdays."), ("assistant", "Noted.")]
    assert said[-1] == ("assistant", "Here again.")
    assert not [c for _, c in said if c.startswith("w w")], "a partial answer was saved"
    assert memories(service, user) == [FACT]
    fault_table.record(
        "client disconnects mid-stream",
        "(gone) backend request cancelled; run recorded `interrupted`",
        "none (earlier turn and memory kept; the partial answer is not saved)",
        recovery,
    )
