"""Neo4j stopped under a running service (a real Neo4j, the in-process harness over Bolt), then
started again on the same port and database: retrieval goes on from Qdrant with a warning, graph
look-ups and uploads are refused with 503 (never accepted half-written), and once Neo4j is back
the graph written before is there and uploads work again, without restarting the service."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from memory.neo4j_server import EmbeddedNeo4j
from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.faults.conftest import FaultTable
from tests.faults.helpers import HEADERS, Servers, recovery_seconds, turn
from tests.service_runner import running_service

BEFORE = "The with statement calls a context manager on entry and on exit."
BEFORE_GRAPH = {
    "entities": [
        {"name": "with statement", "type": "concept"},
        {"name": "context manager", "type": "concept"},
    ],
    "relations": [{"source": "with statement", "type": "USES", "target": "context manager"}],
}
DURING = "A generator function yields values one at a time to its caller."
DURING_GRAPH = {
    "entities": [
        {"name": "generator function", "type": "concept"},
        {"name": "caller", "type": "concept"},
    ],
    "relations": [{"source": "generator function", "type": "YIELDS_TO", "target": "caller"}],
}


def _upload(url: str, text: str, title: str) -> httpx.Response:
    return httpx.post(
        f"{url}/documents", json={"text": text, "title": title}, headers=HEADERS, timeout=30
    )


def _entities(url: str, query: str) -> httpx.Response:
    return httpx.get(f"{url}/graph/entities", params={"q": query}, headers=HEADERS, timeout=30)


def _found(url: str, query: str) -> bool:
    response = _entities(url, query)
    return response.status_code == 200 and query in [e["name"] for e in response.json()["entities"]]


def test_neo4j_stopped_and_restarted(
    tmp_path: Path, backend: ScriptedBackend, redis_url: str, fault_table: FaultTable
) -> None:
    """Shows: with Neo4j down a rag turn still ends `end` with its Qdrant sources and a
    `warning` event, `/graph/entities` is 503 naming Neo4j, an upload is 503
    `ingestion_failed` (so the client knows to send it again) and `/readyz` stays 200 with the
    graph down; after Neo4j restarts, the entities written before are found, the document is
    still listed `ready`, and the refused upload, sent again, is ingested into both stores."""
    servers = Servers()
    neo4j = EmbeddedNeo4j(tmp_path / "neo4j")
    servers.run(neo4j.start())
    settings = make_settings(
        backend_entry("only", backend),
        graph={"url": neo4j.url, "connect_timeout": 1.0},
        redis={"url": redis_url},
    )
    try:
        with running_service(settings) as url:
            _neo4j_fault(url, backend, neo4j, servers, fault_table)
    finally:
        servers.run(neo4j.stop())
        servers.close()


def _neo4j_fault(
    url: str,
    backend: ScriptedBackend,
    neo4j: EmbeddedNeo4j,
    servers: Servers,
    fault_table: FaultTable,
) -> None:
    backend.enqueue(Reply(text=json.dumps(BEFORE_GRAPH)), model="extractor")
    uploaded = _upload(url, BEFORE, f"With {uuid.uuid4().hex[:6]}")
    assert uploaded.status_code == 200, uploaded.text
    document: dict[str, Any] = uploaded.json()
    assert _found(url, "with statement")

    servers.run(neo4j.stop())
    backend.set_default(Reply(text="It calls a context manager [1]."), model="generator")
    question = "What does the with statement call?"
    thread = f"t-{uuid.uuid4().hex[:8]}"
    status, events = turn(url, question, thread, route="rag", quality_check=False)
    assert status == 200 and events[-1].kind == "end"
    warning = next(e for e in events if e.kind == "warning").data
    assert "knowledge graph unavailable" in warning["message"]
    sources = next(e for e in events if e.kind == "sources").data["sources"]
    assert document["id"] in [s["document_id"] for s in sources]
    looked_up = _entities(url, "with statement")
    assert looked_up.status_code == 503, looked_up.text
    assert "Neo4j" in looked_up.json()["error"]["message"]
    backend.enqueue(Reply(text=json.dumps(DURING_GRAPH)), model="extractor")
    refused = _upload(url, DURING, "Generators")
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "ingestion_failed"
    ready = httpx.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["graph"]["status"] == "down"

    servers.run(neo4j.start())  # the same port and database folder
    recovery = recovery_seconds(lambda: _found(url, "with statement"))

    kept = httpx.get(f"{url}/documents/{document['id']}", headers=HEADERS).json()
    assert kept["status"] == "ready" and kept["chunk_count"] == document["chunk_count"]
    backend.enqueue(Reply(text=json.dumps(DURING_GRAPH)), model="extractor")
    again = _upload(url, DURING, "Generators")
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "ready"
    assert _found(url, "generator function")
    assert httpx.get(f"{url}/readyz", timeout=10).json()["graph"]["status"] == "up"
    fault_table.record(
        "Neo4j stopped, restarted",
        "rag turn `end` from Qdrant + `warning`; graph look-up 503; upload 503 "
        "`ingestion_failed`; `/readyz` 200 (graph down)",
        "none (graph and documents kept; the refused upload succeeds when re-sent)",
        recovery,
    )
