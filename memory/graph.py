"""The knowledge graph in Neo4j: entities and relations extracted from chunks, looked up by name
and expanded into a bounded neighbourhood for retrieval.

Model: `(:Entity {tenant, key, name, type})`, keyed by tenant and normalised name + type (so the
same thing named in two documents is one node); `(:Chunk {id, tenant, document_id, title})`;
`(entity)-[:MENTIONED_IN]->(chunk)`; `(a)-[:RELATES {type, tenant, documents, chunks}]->(b)`. The
relation's kind is a property, not a Cypher relationship type, because relationship types cannot be
parameters and text from documents is never spliced into a query. Every query is parameterised and
filters by tenant. The Neo4j store itself is `memory.neo4j_graph.Neo4jGraph`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from switchboard.errors import SwitchboardError


class GraphUnavailable(SwitchboardError):
    status = 503
    type = "store_error"
    code = "graph_unavailable"


def normalise(name: str) -> str:
    """The form two mentions of one entity share: NFKC, case-folded, single-spaced."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def entity_key(name: str, type_: str) -> str:
    return f"{normalise(name)}|{type_}"


@dataclass(frozen=True, slots=True)
class Entity:
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class Relation:
    source: str  # entity names, as extracted
    type: str
    target: str


@dataclass(slots=True)
class ChunkGraph:
    """What was extracted from one chunk."""

    chunk_id: str
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EntityInfo:
    id: str  # the entity key
    name: str
    type: str
    score: float | None = None
    mentions: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "score": self.score,
            "mentions": self.mentions,
        }


@dataclass(frozen=True, slots=True)
class Fact:
    """One relation on a path from a linked entity: `source -type-> target`."""

    source: str
    type: str
    target: str

    def text(self) -> str:
        return f"{self.source} -[{self.type}]-> {self.target}"


@dataclass(frozen=True, slots=True)
class GraphChunk:
    """A chunk reached from the question's entities, with the path that reached it."""

    chunk_id: str
    document_id: str
    path: tuple[str, ...]  # entity names and relation types, alternating
    hops: int


@dataclass(frozen=True, slots=True)
class Neighbourhood:
    entity: EntityInfo
    facts: list[Fact]
    chunks: list[GraphChunk]


class KnowledgeGraph(Protocol):
    """What ingestion, retrieval, forgetting and the API need of a graph store."""

    async def ensure_schema(self) -> None: ...
    async def write(
        self, tenant: str, document_id: str, title: str, chunks: Sequence[ChunkGraph]
    ) -> None: ...
    async def delete_document(self, tenant: str, document_id: str) -> dict[str, int]: ...
    async def search_entities(self, tenant: str, text: str, limit: int) -> list[EntityInfo]: ...
    async def neighbourhood(
        self, tenant: str, key: str, hops: int, limit: int
    ) -> Neighbourhood | None: ...
    async def counts(self, tenant: str, document_id: str | None = None) -> dict[str, int]: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...
