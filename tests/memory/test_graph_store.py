"""The knowledge-graph contract, against the real Neo4j (Community 5.26 over Bolt).

Every `KnowledgeGraph` implementation must pass these; Neo4j is the one there is (the embedded
harness and a Neo4j 5 server run the same code)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from memory.graph import ChunkGraph, Entity, GraphUnavailable, Relation, entity_key
from memory.neo4j_graph import Neo4jGraph
from memory.neo4j_server import EmbeddedNeo4j, harness_classpath
from switchboard.processes import free_port


@pytest.fixture
async def graph(neo4j_url: str) -> AsyncIterator[Neo4jGraph]:
    store = Neo4jGraph(neo4j_url)
    await store.ensure_schema()
    yield store
    await store.close()


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


WITH = ChunkGraph(
    "c-with",
    [Entity("with statement", "concept"), Entity("context manager", "concept")],
    [Relation("with statement", "USES", "context manager")],
)
SPECIAL = ChunkGraph(
    "c-special",
    [Entity("Context Manager", "concept"), Entity("__enter__()", "concept")],
    [Relation("context manager", "DEFINES", "__enter__()")],
)


async def test_entities_merge_by_normalised_name_and_type(graph: Neo4jGraph) -> None:
    tenant = _tenant()
    await graph.write(tenant, "doc-a", "With", [WITH])
    await graph.write(tenant, "doc-b", "Special", [SPECIAL])
    counts = await graph.counts(tenant)
    # "context manager" and "Context Manager" are one entity; three in all.
    assert counts == {"entities": 3, "chunks": 2, "relations": 2}
    found = await graph.search_entities(tenant, "context manager", 5)
    assert found[0].id == entity_key("context manager", "concept")
    assert found[0].mentions == 2


async def test_neighbourhood_reaches_two_hops_with_paths(graph: Neo4jGraph) -> None:
    tenant = _tenant()
    await graph.write(tenant, "doc-a", "With", [WITH])
    await graph.write(tenant, "doc-b", "Special", [SPECIAL])
    key = entity_key("with statement", "concept")
    one = await graph.neighbourhood(tenant, key, 1, 50)
    assert one is not None
    assert {c.chunk_id for c in one.chunks} == {"c-with", "c-special"}  # via context manager
    assert {f.text() for f in one.facts} == {"with statement -[USES]-> context manager"}
    two = await graph.neighbourhood(tenant, key, 2, 50)
    assert two is not None
    assert "Context Manager -[DEFINES]-> __enter__()" in {f.text() for f in two.facts} or (
        "context manager -[DEFINES]-> __enter__()" in {f.text() for f in two.facts}
    )
    special = next(c for c in two.chunks if c.chunk_id == "c-special")
    assert special.hops == 1 and special.path[1] == "USES"
    assert await graph.neighbourhood(tenant, "no such|concept", 2, 50) is None


async def test_tenants_never_see_each_other(graph: Neo4jGraph) -> None:
    mine, theirs = _tenant(), _tenant()
    await graph.write(mine, "doc-a", "With", [WITH])
    assert await graph.search_entities(theirs, "with statement", 5) == []
    key = entity_key("with statement", "concept")
    assert await graph.neighbourhood(theirs, key, 2, 50) is None
    assert await graph.counts(theirs) == {"entities": 0, "chunks": 0, "relations": 0}


async def test_deleting_a_document_keeps_what_others_still_mention(graph: Neo4jGraph) -> None:
    tenant = _tenant()
    await graph.write(tenant, "doc-a", "With", [WITH])
    await graph.write(tenant, "doc-b", "Special", [SPECIAL])
    removed = await graph.delete_document(tenant, "doc-a")
    assert removed == {"graph_chunks": 1, "graph_relations": 1, "graph_entities": 1}
    assert await graph.counts(tenant) == {"entities": 2, "chunks": 1, "relations": 1}
    await graph.delete_document(tenant, "doc-b")
    assert await graph.counts(tenant) == {"entities": 0, "chunks": 0, "relations": 0}


async def test_names_are_data_never_query_syntax(graph: Neo4jGraph) -> None:
    tenant = _tenant()
    odd = 'x") DETACH DELETE n //'
    await graph.write(tenant, "doc", "Odd", [ChunkGraph("c-odd", [Entity(odd, "other")])])
    assert (await graph.counts(tenant))["entities"] == 1
    found = await graph.search_entities(tenant, 'detach") AND (*:* OR NOT ~', 5)
    assert [e.name for e in found] == [odd]


async def test_a_wrong_port_fails_fast_and_clearly() -> None:
    graph = Neo4jGraph(f"bolt://127.0.0.1:{free_port()}", connect_timeout=1)
    with pytest.raises(GraphUnavailable, match="Neo4j failed"):
        await graph.ping()
    await graph.close()


async def test_a_neo4j_down_at_start_gets_its_schema_when_it_comes_up(
    tmp_path: Path,
) -> None:
    port = free_port()
    graph = Neo4jGraph(f"bolt://127.0.0.1:{port}", connect_timeout=1)
    with pytest.raises(GraphUnavailable):
        await graph.ensure_schema()  # what start-up does; the service stays up
    server = EmbeddedNeo4j(tmp_path / "late", port)
    await server.start()
    try:
        # The first write sets up the constraints and the full-text index that search needs.
        await graph.write("t", "doc", "Late", [WITH])
        found = await graph.search_entities("t", "what is a context manager?", 5)
        assert "context manager" in [e.name for e in found]
        await graph.write("t", "doc", "Late", [WITH])  # merged, not duplicated
        assert (await graph.counts("t"))["entities"] == 2
    finally:
        await graph.close()
        await server.stop()


async def test_the_harness_resolves_with_a_relative_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default data folder is `.switchboard`, relative to where the service runs.
    monkeypatch.chdir(tmp_path)
    classpath = await harness_classpath(Path(".switchboard") / "neo4j")
    assert "neo4j-harness" in classpath
    assert list((tmp_path / ".switchboard" / "neo4j").glob("classpath-*.txt"))
