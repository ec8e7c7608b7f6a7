"""The extraction stage against the scripted extractor model and the real Neo4j: an answer that
fails validation is asked again, and after the last attempt the chunk is kept without entities
and the reason logged."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator

import pytest

from memory.chunking import Chunk
from memory.documents import DocumentRecord
from memory.graph_extract import GraphStage
from memory.neo4j_graph import Neo4jGraph
from switchboard.settings import GraphSettings
from tests.backends import Reply, ScriptedBackend
from tests.memory.conftest import Parts

TEXT = "The with statement uses a context manager."


@pytest.fixture
async def graph(neo4j_url: str) -> AsyncIterator[Neo4jGraph]:
    store = Neo4jGraph(neo4j_url)
    await store.ensure_schema()
    yield store
    await store.close()


def _record(tenant: str) -> DocumentRecord:
    return DocumentRecord(str(uuid.uuid4()), tenant, "With", "with.md", "markdown", "h", len(TEXT))


def _extractor_requests(backend: ScriptedBackend) -> int:
    return sum(r.get("model") == "extractor" for r in backend.requests)


async def test_invalid_answers_are_retried_then_the_chunk_is_kept_without_entities(
    parts: Parts, backend: ScriptedBackend, graph: Neo4jGraph, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="memory.graph_extract")
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    invented = {"entities": [{"name": "flux capacitor", "type": "product"}], "relations": []}
    backend.set_default(Reply(text="not json"), model="extractor")
    backend.enqueue(Reply(text=json.dumps(invented)), model="extractor")  # not in the text
    stage = GraphStage(graph, parts.llm, GraphSettings(extraction_attempts=3))
    await stage.run(_record(tenant), [Chunk(0, TEXT, None, None, 9)])
    assert _extractor_requests(backend) == 3
    assert await graph.counts(tenant) == {"entities": 0, "chunks": 1, "relations": 0}
    assert "none of the entities occurs in the text" in caplog.text  # the first attempt
    assert "chunk kept without entities: not the extraction schema" in caplog.text


async def test_a_valid_answer_after_an_invalid_one_is_written(
    parts: Parts, backend: ScriptedBackend, graph: Neo4jGraph
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    valid = {
        "entities": [
            {"name": "with statement", "type": "concept"},
            {"name": "context manager", "type": "concept"},
        ],
        "relations": [{"source": "with statement", "type": "USES", "target": "context manager"}],
    }
    backend.enqueue(Reply(text='```json\n{"entities": 3}\n```'), model="extractor")
    backend.enqueue(Reply(text=json.dumps(valid)), model="extractor")
    stage = GraphStage(graph, parts.llm, GraphSettings())
    await stage.run(_record(tenant), [Chunk(0, TEXT, None, None, 9)])
    assert _extractor_requests(backend) == 2
    assert await graph.counts(tenant) == {"entities": 2, "chunks": 1, "relations": 1}
