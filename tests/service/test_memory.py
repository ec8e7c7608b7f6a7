"""Long-term memory and threads against the real Redis (valkey + RedisJSON + RediSearch):
a fact learnt in one thread is used in another thread of the same user, never for another user
or tenant; thread state and history; forgetting a thread or a user leaves nothing in Redis."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from redis import Redis

from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.service_runner import running_service

QUIET = {"route": "direct", "quality_check": False}
FACT = "The user's name is Ada and she maintains the billing service."


@pytest.fixture
def service(backend: ScriptedBackend, redis_url: str) -> Iterator[str]:
    with running_service(
        make_settings(backend_entry("p", backend), redis={"url": redis_url})
    ) as url:
        yield url


def _generator_prompt(backend: ScriptedBackend) -> str:
    request = next(r for r in reversed(backend.requests) if r.get("model") == "generator")
    return "\n".join(m["content"] for m in request["messages"])


def _turn(url: str, text: str, thread: str, user: str | None, tenant: str) -> list[object]:
    headers = {"X-Switchboard-Tenant": tenant}
    body = {
        "messages": [{"role": "user", "content": text}],
        "thread_id": thread,
        **({"user": user} if user else {}),
        **QUIET,
    }
    with httpx.stream(
        "POST", f"{url}/v1/chat/stream", json=body, headers=headers, timeout=30
    ) as response:
        assert response.status_code == 200, response.read()
        return list(response.iter_lines())


def _memories(url: str, user: str, tenant: str) -> list[str]:
    response = httpx.get(f"{url}/users/{user}/memories", headers={"X-Switchboard-Tenant": tenant})
    assert response.status_code == 200, response.text
    return [m["text"] for m in response.json()["memories"]]


def _wait_for_memories(url: str, user: str, tenant: str, count: int) -> list[str]:
    """Facts are learnt after the answer, in the background: wait (bounded) until `count`."""
    deadline = time.monotonic() + 20
    while len(found := _memories(url, user, tenant)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _keys_mentioning(redis_url: str, needle: str) -> list[str]:
    """Every Redis key whose name or JSON/hash/string value mentions `needle`."""
    client = Redis.from_url(redis_url)
    found = []
    for key in client.scan_iter(count=1000):
        name = key.decode()
        kind = client.type(key).decode()
        if kind == "ReJSON-RL":
            value = json.dumps(client.json().get(name))
        elif kind == "hash":
            value = str(client.hgetall(key))
        elif kind == "string":
            value = str(client.get(key))
        elif kind == "set":
            value = str(client.smembers(key))
        elif kind == "zset":
            value = str(client.zrange(key, 0, -1))
        else:
            value = ""
        if needle in name or needle in value:
            found.append(name)
    client.close()
    return found


def test_a_memory_follows_its_user_across_threads_and_no_one_else(
    service: str, backend: ScriptedBackend
) -> None:
    tenant, other_tenant = f"t-{uuid.uuid4().hex[:8]}", f"o-{uuid.uuid4().hex[:8]}"
    backend.set_default(Reply(text="Noted."), model="generator")
    backend.enqueue(Reply(text=json.dumps({"facts": [FACT]})), model="extractor")
    _turn(service, "I'm Ada; I maintain the billing service.", "a1", "ada", tenant)
    assert _wait_for_memories(service, "ada", tenant, 1) == [FACT]
    extraction = next(r for r in backend.requests if r.get("model") == "extractor")
    assert extraction["response_format"]["type"] == "json_schema"
    assert "I'm Ada" in extraction["messages"][1]["content"]

    backend.set_default(Reply(text='{"facts": []}'), model="extractor")
    _turn(service, "Which service do I maintain?", "a2", "ada", tenant)
    assert FACT in _generator_prompt(backend)  # another thread, same user

    _turn(service, "Which service do I maintain?", "b1", "bob", tenant)
    assert FACT not in _generator_prompt(backend)  # another user
    _turn(service, "Which service do I maintain?", "c1", "ada", other_tenant)
    assert FACT not in _generator_prompt(backend)  # the same user name in another tenant
    _turn(service, "Which service do I maintain?", "n1", None, tenant)
    assert FACT not in _generator_prompt(backend)  # no user: no memory

    listed = httpx.get(
        f"{service}/users/ada/memories", headers={"X-Switchboard-Tenant": tenant}
    ).json()["memories"]
    assert [m["text"] for m in listed] == [FACT]
    assert listed[0]["thread_id"] == "a1"
    elsewhere = httpx.get(
        f"{service}/users/ada/memories", headers={"X-Switchboard-Tenant": other_tenant}
    ).json()["memories"]
    assert elsewhere == []


def test_an_invalid_extraction_remembers_nothing_and_the_turn_succeeds(
    service: str, backend: ScriptedBackend
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    backend.set_default(Reply(text="Sure."), model="generator")
    backend.enqueue(Reply(text="Ada likes tea"), model="extractor")  # not JSON
    lines = _turn(service, "I like tea.", "x1", "ada", tenant)
    assert any(line == "event: end" for line in lines)
    # A later turn's fact is stored; the invalid answer before it left nothing.
    backend.enqueue(Reply(text=json.dumps({"facts": ["Ada drinks coffee."]})), model="extractor")
    _turn(service, "Now I drink coffee.", "x1", "ada", tenant)
    assert _wait_for_memories(service, "ada", tenant, 1) == ["Ada drinks coffee."]


def test_the_answer_ends_before_the_facts_are_learnt_and_forget_waits_for_them(
    service: str, backend: ScriptedBackend, redis_url: str
) -> None:
    tenant, user = f"t-{uuid.uuid4().hex[:8]}", f"u-{uuid.uuid4().hex[:8]}"
    backend.set_default(Reply(text="Noted."), model="generator")
    slow = Reply(text=json.dumps({"facts": ["Slow fact."]}), ttft=3)
    backend.enqueue(slow, model="extractor")
    lines = _turn(service, "Remember something slow about me.", "s1", user, tenant)
    assert "event: end" in lines
    # The stream has ended while the extractor is still thinking: nothing stored yet.
    assert any(r.get("model") == "extractor" for r in backend.requests)
    assert _memories(service, user, tenant) == []
    # Forgetting the user now waits for that extraction, then deletes what it stored.
    headers = {"X-Switchboard-Tenant": tenant}
    deleted = httpx.delete(f"{service}/users/{user}", headers=headers, timeout=30).json()
    assert deleted["deleted"]["memories"] == 1
    # Forgotten whole: the user is unknown now, as is one the tenant never had.
    gone = httpx.get(f"{service}/users/{user}/memories", headers=headers)
    assert gone.status_code == 404
    assert httpx.delete(f"{service}/users/{user}", headers=headers).status_code == 404
    assert _keys_mentioning(redis_url, "Slow fact.") == []


def test_thread_state_history_and_tenant_isolation(service: str, backend: ScriptedBackend) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    thread = f"th-{uuid.uuid4().hex[:8]}"
    headers = {"X-Switchboard-Tenant": tenant}
    backend.set_default(Reply(text="One."), model="generator")
    _turn(service, "First?", thread, None, tenant)
    backend.set_default(Reply(text="Two."), model="generator")
    _turn(service, "Second?", thread, None, tenant)

    state = httpx.get(f"{service}/threads/{thread}/state", headers=headers)
    assert state.status_code == 200
    values = state.json()["values"]
    assert [m["content"] for m in values["messages"]] == ["First?", "One.", "Second?", "Two."]
    assert values["answer"] == "Two."
    history = httpx.get(f"{service}/threads/{thread}/history", headers=headers).json()
    assert len(history) >= 2
    assert [m["content"] for m in history[0]["values"]["messages"]][-1] == "Two."
    assert history[0]["checkpoint"]["checkpoint_id"] != history[1]["checkpoint"]["checkpoint_id"]
    posted = httpx.post(f"{service}/threads/{thread}/history", json={"limit": 1}, headers=headers)
    assert len(posted.json()) == 1

    stranger = {"X-Switchboard-Tenant": "someone-else"}
    for path in (f"/threads/{thread}", f"/threads/{thread}/state", f"/threads/{thread}/history"):
        assert httpx.get(f"{service}{path}", headers=stranger).status_code == 404
    assert httpx.delete(f"{service}/threads/{thread}", headers=stranger).status_code == 404
    body = {"messages": [{"role": "user", "content": "hi"}], "thread_id": thread, **QUIET}
    hijack = httpx.post(f"{service}/v1/chat/stream", json=body, headers=stranger)
    assert hijack.status_code == 404
    assert httpx.get(f"{service}/threads/nope/state", headers=headers).status_code == 404


def test_forgetting_a_thread_and_a_user_leaves_nothing_in_redis(
    service: str, backend: ScriptedBackend, redis_url: str
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    headers = {"X-Switchboard-Tenant": tenant}
    user = f"u-{uuid.uuid4().hex[:8]}"
    one, two = f"one-{uuid.uuid4().hex[:8]}", f"two-{uuid.uuid4().hex[:8]}"
    backend.set_default(Reply(text="Ok."), model="generator")
    backend.enqueue(Reply(text=json.dumps({"facts": ["Fact from one."]})), model="extractor")
    backend.enqueue(Reply(text=json.dumps({"facts": ["Fact from two."]})), model="extractor")
    _turn(service, "Something about me.", one, user, tenant)
    _turn(service, "Something else about me.", two, user, tenant)
    assert len(_wait_for_memories(service, user, tenant, 2)) == 2
    assert _keys_mentioning(redis_url, one) and _keys_mentioning(redis_url, "Fact from one.")

    deleted = httpx.delete(f"{service}/threads/{one}", headers=headers).json()["deleted"]
    assert deleted["threads"] == 1 and deleted["memories"] == 1 and deleted["checkpoints"] >= 1
    assert _keys_mentioning(redis_url, one) == []
    assert _keys_mentioning(redis_url, "Fact from one.") == []
    assert _keys_mentioning(redis_url, "Fact from two.")  # the other thread's memory stays
    assert httpx.get(f"{service}/threads/{one}/state", headers=headers).status_code == 404

    forgotten = httpx.delete(f"{service}/users/{user}", headers=headers).json()["deleted"]
    assert forgotten["threads"] == 1 and forgotten["memories"] == 1
    assert _keys_mentioning(redis_url, two) == []
    assert _keys_mentioning(redis_url, user) == []
    assert _keys_mentioning(redis_url, "Fact from two.") == []
