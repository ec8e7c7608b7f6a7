"""Tenant isolation with real API keys: for every endpoint that takes an id, another tenant's id
is a 404 (never a 403: ids do not leak), nothing of it is changed, and lists and searches show a
tenant only its own items. The endpoints are read from the OpenAPI schema, so a new endpoint that
takes an id fails this suite until it is covered here."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from memory.api_keys import ApiKeyStore
from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.service_runner import running_service

TEXT = "Brindle Yard restores steam engines. Brindle Yard was founded by Ada Lovelace."
GRAPH = {
    "entities": [
        {"name": "Brindle Yard", "type": "organization"},
        {"name": "Ada Lovelace", "type": "person"},
    ],
    "relations": [{"source": "Ada Lovelace", "type": "FOUNDED", "target": "Brindle Yard"}],
}
FACTS = {"facts": ["Ada restores steam engines."]}
# Workflows are the service's, not a tenant's: every tenant sees the same assistants.
SHARED = {"assistant_id"}


@dataclass
class World:
    url: str
    a: dict[str, str]  # tenant A's user key
    b: dict[str, str]  # tenant B's admin key (an admin: refused by tenancy, not by role)
    ids: dict[str, str]  # A's items, by path parameter


def _keys(redis_url: str) -> tuple[str, str, str]:
    """Tenant A's user token, tenant B's admin token, and the id of an admin key of A's."""

    async def make() -> tuple[str, str, str]:
        client = Redis.from_url(redis_url)
        store = ApiKeyStore(client)
        suffix = uuid.uuid4().hex[:6]
        try:
            _, a_user = await store.create(f"tenant-a-{suffix}", "user")
            a_admin_key, _ = await store.create(f"tenant-a-{suffix}", "admin")
            _, b_admin = await store.create(f"tenant-b-{suffix}", "admin")
        finally:
            await client.aclose()
        return a_user, b_admin, a_admin_key.key_id

    return asyncio.run(make())


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def world(scripted_session: ScriptedBackend, neo4j_url: str, redis_url: str) -> Iterator[World]:
    backend = scripted_session
    backend.reset()
    backend.set_default(Reply(text='{"route": "direct"}'), model="router")
    backend.set_default(Reply(text="Noted."), model="generator")
    backend.set_default(Reply(text='{"score": 5}'), model="judge")
    backend.set_default(Reply(text=json.dumps(FACTS)), model="extractor")
    settings = make_settings(
        backend_entry("p", backend),
        auth={"mode": "keys"},
        graph={"url": neo4j_url},
        redis={"url": redis_url},
    )
    a_user, b_admin, a_key_id = _keys(redis_url)
    with running_service(settings) as url:
        a = _bearer(a_user)
        thread_id = httpx.post(f"{url}/threads", json={}, headers=a).json()["thread_id"]
        run = {
            "assistant_id": "switchboard",
            "input": {"messages": [{"role": "user", "content": "I restore steam engines."}]},
            "context": {"user": "ada", "quality_check": False},
        }
        waited = httpx.post(f"{url}/threads/{thread_id}/runs/wait", json=run, headers=a)
        assert waited.status_code == 200, waited.text
        run_id = httpx.get(f"{url}/threads/{thread_id}/runs", headers=a).json()[0]["run_id"]
        # What the turn taught is remembered in the background: wait for it before the
        # extractor is scripted for the document's graph.
        deadline = time.monotonic() + 20
        while not _memories(url, a):
            assert time.monotonic() < deadline, "the turn's memory was never written"
            time.sleep(0.05)
        backend.enqueue(Reply(text=json.dumps(GRAPH)), model="extractor")
        uploaded = httpx.post(
            f"{url}/documents",
            json={"text": TEXT, "title": "Brindle Yard", "user": "ada"},
            headers=a,
            timeout=60,
        )
        assert uploaded.status_code == 200, uploaded.text
        document_id = uploaded.json()["id"]
        entities = httpx.get(f"{url}/graph/entities", params={"q": "Brindle"}, headers=a).json()
        assert entities["entities"], entities
        entity_id = entities["entities"][0]["id"]
        ids = {
            "thread_id": thread_id,
            "run_id": run_id,
            "document_id": document_id,
            "entity_id": entity_id,
            "user": "ada",
            "key_id": a_key_id,
        }
        yield World(url, a, _bearer(b_admin), ids)
    backend.reset()


def _memories(url: str, headers: dict[str, str]) -> list[Any]:
    response = httpx.get(f"{url}/users/ada/memories", headers=headers)
    if response.status_code == 404:
        return []
    memories: list[Any] = response.json()["memories"]
    return memories


def _operations(url: str) -> list[tuple[str, str]]:
    """(method, path template) of every operation whose path takes an id."""
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    return [
        (method.upper(), path)
        for path, methods in paths.items()
        for method in methods
        if "{" in path and not set(re.findall(r"{(\w+)", path)) <= SHARED
    ]


def _request(world: World, method: str, template: str, headers: dict[str, str]) -> httpx.Response:
    path = re.sub(r"{(\w+)(:\w+)?}", lambda m: world.ids[m.group(1)], template)
    body: dict[str, Any] | None = None
    if method == "POST":
        body = {
            "assistant_id": "switchboard",
            "input": {"messages": [{"role": "user", "content": "Tell me about Ada."}]},
        }
        if template.endswith("/history"):
            body = {"limit": 5}
    return httpx.request(method, f"{world.url}{path}", json=body, headers=headers, timeout=30)


def test_every_endpoint_with_an_id_answers_another_tenant_404(world: World) -> None:
    operations = _operations(world.url)
    covered = {name for _, path in operations for name in re.findall(r"{(\w+)", path)}
    assert covered == set(world.ids), f"path parameters without an item here: {covered}"
    assert len(operations) >= 20, operations
    for method, template in operations:
        refused = _request(world, method, template, world.b)
        assert refused.status_code == 404, (method, template, refused.text)
        # The answer names nothing of A's item beyond the id the caller sent.
        assert "tenant-a" not in refused.text and "Brindle" not in refused.text
    # Nothing was changed: A still has every item, the runs B tried to start never ran.
    a, url = world.a, world.url
    ids = world.ids
    assert httpx.get(f"{url}/threads/{ids['thread_id']}", headers=a).status_code == 200
    runs = httpx.get(f"{url}/threads/{ids['thread_id']}/runs", headers=a).json()
    assert [r["run_id"] for r in runs] == [ids["run_id"]]
    assert runs[0]["status"] == "success"
    assert httpx.get(f"{url}/documents/{ids['document_id']}", headers=a).status_code == 200
    entity = httpx.get(f"{url}/graph/entities/{ids['entity_id']}", headers=a)
    assert entity.status_code == 200
    memories = httpx.get(f"{url}/users/ada/memories", headers=a)
    assert memories.status_code == 200 and memories.json()["memories"]


def test_lists_and_searches_show_only_the_tenant_s_own(world: World) -> None:
    url, a, b = world.url, world.a, world.b
    # B has items of its own too, so that empty lists are not the only thing that passes.
    b_thread = httpx.post(f"{url}/threads", json={}, headers=b).json()["thread_id"]
    for headers, own in ((a, world.ids["thread_id"]), (b, b_thread)):
        found = httpx.post(f"{url}/threads/search", json={"limit": 100}, headers=headers).json()
        assert [t["thread_id"] for t in found] == [own]
    assert [d["id"] for d in httpx.get(f"{url}/documents", headers=b).json()["documents"]] == []
    listed = httpx.get(f"{url}/documents", headers=a).json()["documents"]
    assert [d["id"] for d in listed] == [world.ids["document_id"]]
    for q in ("Brindle", "Ada"):
        found = httpx.get(f"{url}/graph/entities", params={"q": q}, headers=b).json()
        assert found["entities"] == []
        assert httpx.get(f"{url}/graph/entities", params={"q": q}, headers=a).json()["entities"]
    keys = httpx.get(f"{url}/admin/keys", headers=b).json()
    assert len(keys) == 1 and keys[0]["tenant"].startswith("tenant-b-")
    # Retrieval in B's turn finds nothing of A's documents.
    turn = {
        "messages": [{"role": "user", "content": "Who founded Brindle Yard?"}],
        "route": "rag",
        "quality_check": False,
    }
    streamed = httpx.post(f"{url}/v1/chat/stream", json=turn, headers=b, timeout=30)
    assert streamed.status_code == 200
    assert '"sources":[]' in streamed.text and "Brindle Yard restores" not in streamed.text
