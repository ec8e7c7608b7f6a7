"""Text from documents is data to Neo4j: entity names and relation types that look like Cypher are
stored and read back verbatim, and the rest of the graph is untouched (real Neo4j)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from memory.graph import ChunkGraph, Entity, Relation, entity_key
from memory.neo4j_graph import Neo4jGraph

DROP = "x'}) DETACH DELETE n //"
MATCH_ALL = 'y"}) MATCH (m) DETACH DELETE m RETURN 1 AS `x'
TYPE = "RELATES`]->() MATCH (m) DETACH DELETE m //"


def _bystander() -> ChunkGraph:
    # Chunk ids are unique across tenants in the service (they carry the document's id).
    return ChunkGraph(
        f"c-{uuid.uuid4().hex[:8]}",
        [Entity("lamp", "product"), Entity("keeper", "person")],
        [Relation("keeper", "MAINTAINS", "lamp")],
    )


@pytest.fixture
async def graph(neo4j_url: str) -> AsyncIterator[Neo4jGraph]:
    store = Neo4jGraph(neo4j_url)
    await store.ensure_schema()
    yield store
    await store.close()


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


async def test_cypher_looking_names_and_relation_types_are_stored_verbatim(
    graph: Neo4jGraph,
) -> None:
    tenant, other = _tenant(), _tenant()
    await graph.write(other, "doc-b", "Bystander", [_bystander()])
    await graph.write(tenant, "doc-b", "Bystander", [_bystander()])
    hostile = ChunkGraph(
        f"c-{uuid.uuid4().hex[:8]}",
        [Entity(DROP, "other"), Entity(MATCH_ALL, "concept"), Entity("lamp", "product")],
        [Relation(DROP, TYPE, MATCH_ALL), Relation(MATCH_ALL, "A`B", "lamp")],
    )
    await graph.write(tenant, "doc-evil", "x'}) RETURN 1 //", [hostile])

    # Nothing was deleted, anywhere: each tenant has what it was given.
    assert await graph.counts(other) == {"entities": 2, "chunks": 1, "relations": 1}
    assert await graph.counts(tenant) == {"entities": 4, "chunks": 2, "relations": 3}

    # The names and types come back exactly as they went in.
    found = await graph.search_entities(tenant, "detach delete", 10)
    assert {e.name for e in found} == {DROP, MATCH_ALL}
    hood = await graph.neighbourhood(tenant, entity_key(DROP, "other"), 2, 50)
    assert hood is not None and hood.entity.name == DROP
    facts = {(f.source, f.type, f.target) for f in hood.facts}
    assert (DROP, TYPE, MATCH_ALL) in facts and (MATCH_ALL, "A`B", "lamp") in facts

    # Deleting the hostile document removes only what it brought.
    await graph.delete_document(tenant, "doc-evil")
    assert await graph.counts(tenant) == {"entities": 2, "chunks": 1, "relations": 1}
    assert await graph.counts(other) == {"entities": 2, "chunks": 1, "relations": 1}
