"""Documents become a knowledge graph (real Neo4j), the graph joins retrieval with its paths in
the citations, forgetting a user empties Qdrant and Neo4j of their documents, and a stopped Neo4j
leaves retrieval on Qdrant with a warning event."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from memory.neo4j_graph import Neo4jGraph
from memory.neo4j_server import EmbeddedNeo4j
from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.service_runner import running_service
from tests.sse import stream_turn

WITH_TEXT = (
    "The with statement wraps the execution of a block with methods defined by a context "
    "manager. The with statement evaluates the expression to obtain a context manager."
)
SPECIAL_TEXT = (
    "A context manager is an object that defines the runtime context to be established. "
    "The context manager's __enter__() method is called on entry and __exit__() on exit."
)
WITH_GRAPH = {
    "entities": [
        {"name": "with statement", "type": "concept"},
        {"name": "context manager", "type": "concept"},
    ],
    "relations": [{"source": "with statement", "type": "USES", "target": "context manager"}],
}
SPECIAL_GRAPH = {
    "entities": [
        {"name": "context manager", "type": "concept"},
        {"name": "__enter__()", "type": "concept"},
        {"name": "__exit__()", "type": "concept"},
        {"name": "invented entity", "type": "concept"},  # not in the text: dropped
    ],
    "relations": [
        {"source": "context manager", "type": "DEFINES", "target": "__enter__()"},
        {"source": "context manager", "type": "DEFINES", "target": "__exit__()"},
    ],
}


def _upload(
    url: str, tenant: str, text: str, title: str, user: str, timeout: float = 30
) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/documents",
        json={"text": text, "title": title, "user": user},
        headers={"X-Switchboard-Tenant": tenant},
        timeout=timeout,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_graph_ingestion_retrieval_and_forgetting(
    backend: ScriptedBackend, neo4j_url: str, redis_url: str
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    headers = {"X-Switchboard-Tenant": tenant}
    settings = make_settings(
        backend_entry("p", backend), graph={"url": neo4j_url}, redis={"url": redis_url}
    )
    with running_service(settings) as url:
        assert httpx.get(f"{url}/readyz").json()["graph"]["status"] == "up"
        backend.enqueue(Reply(text="not json at all"), model="extractor")  # retried
        backend.enqueue(Reply(text=json.dumps(WITH_GRAPH)), model="extractor")
        with_doc = _upload(url, tenant, WITH_TEXT, "The with statement", "ada")
        backend.enqueue(Reply(text=json.dumps(SPECIAL_GRAPH)), model="extractor")
        special_doc = _upload(url, tenant, SPECIAL_TEXT, "Special method names", "ada")
        extraction = next(r for r in backend.requests if r.get("model") == "extractor")
        assert extraction["response_format"]["json_schema"]["schema"]["required"] == ["entities"]

        found = httpx.get(
            f"{url}/graph/entities", params={"q": "context manager"}, headers=headers
        ).json()["entities"]
        assert found[0]["name"] == "context manager" and found[0]["mentions"] == 2
        names = {
            e["name"]
            for e in httpx.get(
                f"{url}/graph/entities", params={"q": "invented entity"}, headers=headers
            ).json()["entities"]
        }
        assert "invented entity" not in names
        hood = httpx.get(
            f"{url}/graph/entities/{found[0]['id']}", params={"hops": 1}, headers=headers
        ).json()
        assert {(f["source"], f["type"], f["target"]) for f in hood["facts"]} >= {
            ("with statement", "USES", "context manager"),
            ("context manager", "DEFINES", "__enter__()"),
        }
        other = httpx.get(f"{url}/graph/entities/{found[0]['id']}")  # default tenant
        assert other.status_code == 404

        backend.set_default(Reply(text="It calls __enter__() [1]."), model="generator")
        events = stream_turn(
            url,
            "What does the with statement call on entry?",
            route="rag",
            quality_check=False,
            user="ada",
            headers=headers,
        )
        sources = next(e for e in events if e.kind == "sources").data
        assert "with statement -[USES]-> context manager" in sources["facts"]
        by_document = {s["document_id"]: s for s in sources["sources"]}
        reached = by_document[special_doc["id"]]
        assert reached["graph_path"][:3] == ["with statement", "USES", "context manager"]
        prompt = next(r for r in reversed(backend.requests) if r.get("model") == "generator")
        assert "with statement -[USES]-> context manager" in prompt["messages"][-1]["content"]
        assert not [e for e in events if e.kind == "warning"]

    async def graph_counts() -> dict[str, int]:
        graph = Neo4jGraph(neo4j_url)
        try:
            return await graph.counts(tenant)
        finally:
            await graph.close()

    assert asyncio.run(graph_counts())["entities"] == 4
    with running_service(settings) as url:
        forgotten = httpx.delete(f"{url}/users/ada", headers=headers).json()["deleted"]
        assert forgotten["documents"] == 2 and forgotten["chunks"] == 2
        assert forgotten["graph_entities"] >= 1
        assert httpx.get(f"{url}/documents", headers=headers).json()["documents"] == []
        for doc in (with_doc, special_doc):
            assert httpx.get(f"{url}/documents/{doc['id']}", headers=headers).status_code == 404
    assert asyncio.run(graph_counts()) == {"entities": 0, "chunks": 0, "relations": 0}


async def test_neo4j_stopped_retrieval_goes_on_from_qdrant_with_a_warning(
    backend: ScriptedBackend, tmp_path: Path
) -> None:
    neo4j = EmbeddedNeo4j(tmp_path / "neo4j")
    await neo4j.start()
    settings = make_settings(backend_entry("p", backend), graph={"url": neo4j.url})
    try:
        with running_service(settings) as url:
            backend.enqueue(Reply(text=json.dumps(WITH_GRAPH)), model="extractor")
            doc = await asyncio.to_thread(_upload, url, "default", WITH_TEXT, "With", "ada")
            await neo4j.stop()
            backend.set_default(Reply(text="From the documents [1]."), model="generator")
            events = await asyncio.to_thread(
                stream_turn, url, "What is the with statement?", route="rag", quality_check=False
            )
            warning = next(e for e in events if e.kind == "warning").data
            assert "knowledge graph unavailable" in warning["message"]
            sources = next(e for e in events if e.kind == "sources").data["sources"]
            assert [s["document_id"] for s in sources] == [doc["id"]]
            assert events[-1].kind == "end"
            ready = (await asyncio.to_thread(httpx.get, f"{url}/readyz")).json()
            assert ready["graph"]["status"] == "down"
    finally:
        await neo4j.stop()


def test_the_embedded_graph_opens_after_start_up(backend: ScriptedBackend, redis_url: str) -> None:
    """The service is ready before its embedded Neo4j is: `/readyz` is 200 with the graph
    `starting`, a look-up is refused with that reason, and an upload made meanwhile waits for the
    graph, so its entities land in it."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    headers = {"X-Switchboard-Tenant": tenant}
    settings = make_settings(
        backend_entry("p", backend), graph={"enabled": True}, redis={"url": redis_url}
    )
    with running_service(settings, settled=False) as url:
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["graph"] == {"status": "starting"}
        refused = httpx.get(f"{url}/graph/entities", params={"q": "with"}, headers=headers)
        assert refused.status_code == 503
        assert "starting" in refused.json()["error"]["message"]
        backend.enqueue(Reply(text=json.dumps(WITH_GRAPH)), model="extractor")
        _upload(url, tenant, WITH_TEXT, "The with statement", "ada", timeout=150)
        assert httpx.get(f"{url}/readyz").json()["graph"]["status"] == "up"
        found = httpx.get(
            f"{url}/graph/entities", params={"q": "with statement"}, headers=headers
        ).json()["entities"]
        assert "with statement" in [e["name"] for e in found]
