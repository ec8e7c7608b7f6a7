"""The one model backend fails (HTTP 500, HTTP 429, a hang before the first token, a drop in
mid-stream): a turn ends with one `error` event naming the failure, a run accepted in the
background is reported failed, nothing written before is lost, and the next turn succeeds once
the backend answers again."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

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
    start_run,
    turn,
    turn_ends,
    wait_for,
)
from tests.service_runner import running_service

FACT = "Ada maintains the billing service."
DOCUMENT = "The funicular's second car, Wren, was rebuilt in 2019 by the Holloway Works."


@dataclass(frozen=True, slots=True)
class BackendFault:
    name: str
    reply: Reply
    code: str  # the `error` event's code
    status: int  # the HTTP status the error event carries
    tokens: int  # tokens the client got before the error


FAULTS = [
    BackendFault("backend HTTP 500", Reply(failure="http500"), "backend_unavailable", 503, 0),
    BackendFault("backend HTTP 429", Reply(failure="http429"), "backend_unavailable", 503, 0),
    BackendFault("backend hang", Reply(failure="hang"), "backend_timeout", 504, 0),
    BackendFault(
        "backend mid-stream drop",
        Reply(text="one two three four", failure="drop", fail_after=2),
        "stream_interrupted",
        502,
        2,
    ),
]


@pytest.fixture
def service(backend: ScriptedBackend, redis_url: str) -> Iterator[str]:
    """One backend (no failover to hide the fault), one retry, one-second timeouts and a circuit
    that opens after three failures and half-opens a second later."""
    llm = {
        "max_retries": 1,
        "first_token_timeout": 1.0,
        "idle_timeout": 1.0,
        "breaker_threshold": 3,
        "breaker_reset": 1.0,
    }
    settings = make_settings(backend_entry("only", backend), llm=llm, redis={"url": redis_url})
    backend.set_default(Reply(text='{"route": "direct"}'), model="router")
    backend.set_default(Reply(text='{"facts": []}'), model="extractor")
    with running_service(settings) as url:
        yield url


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_backend_fault(
    fault: BackendFault, service: str, backend: ScriptedBackend, fault_table: FaultTable
) -> None:
    """Shows, for each backend failure: the stream's tokens then one `error` event with the
    failure's code and status; a background run accepted during it ends `error` (reported,
    not stuck); the thread, the user's memory and a document written before are intact; and a
    turn on the same thread succeeds, with the whole conversation, once the backend is back."""
    ids = uuid.uuid4().hex[:8]
    thread, user, other = f"t-{ids}", f"u-{ids}", f"bg-{ids}"
    backend.set_default(Reply(text="Noted."), model="generator")
    backend.enqueue(Reply(text=json.dumps({"facts": [FACT]})), model="extractor")
    status, events = turn(service, "I maintain billing.", thread, user=user, **DIRECT)
    assert status == 200 and events[-1].kind == "end"
    wait_for(lambda: memories(service, user) == [FACT])
    uploaded = httpx.post(
        f"{service}/documents", json={"text": DOCUMENT, "title": "Wren"}, headers=HEADERS
    )
    assert uploaded.status_code == 200, uploaded.text
    document = uploaded.json()["id"]

    backend.set_default(fault.reply, model="generator")
    status, events = turn(service, "And now?", thread, user=user, **DIRECT)
    assert status == 200
    kinds = [e.kind for e in events]
    assert kinds == ["metadata", "route"] + ["token"] * fault.tokens + ["error"]
    error = events[-1].data
    assert (error["code"], error["status"]) == (fault.code, fault.status)
    assert error["type"] == "backend_error" and error["message"]

    assert httpx.post(f"{service}/threads", json={"thread_id": other}, headers=HEADERS).is_success
    run_url = f"{service}/threads/{other}/runs/{start_run(service, other, 'In the background.')}"
    httpx.get(f"{run_url}/join", headers=HEADERS, timeout=30)
    assert httpx.get(run_url, headers=HEADERS).json()["status"] == "error"

    backend.set_default(Reply(text="Back."), model="generator")
    recovery = recovery_seconds(lambda: turn_ends(service, "Probe.", f"probe-{ids}", **DIRECT))
    status, events = turn(service, "Still there?", thread, user=user, **DIRECT)
    assert status == 200 and events[-1].data["output"]["answer"] == "Back."
    prompt = next(r for r in reversed(backend.requests) if r.get("model") == "generator")
    contents = [m["content"] for m in prompt["messages"]]
    first_turn = ["I maintain billing.", "Noted."]
    assert [c for c in contents if c in first_turn] == first_turn, "the thread lost a turn"
    assert any(FACT in c for c in contents), "the user's memory was not recalled"
    assert messages(service, thread)[-1] == ("assistant", "Back.")
    assert memories(service, user) == [FACT]
    listed = httpx.get(f"{service}/documents/{document}", headers=HEADERS).json()
    assert listed["status"] == "ready"
    fault_table.record(
        fault.name,
        f"{fault.tokens} tokens, then SSE `error` `{fault.code}` ({fault.status}); "
        "background run → `error`",
        "none (thread, memory, document kept)",
        recovery,
    )
