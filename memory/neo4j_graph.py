"""The knowledge graph on Neo4j (`KnowledgeGraph` in `memory.graph` says what it holds). Its own
module because the driver takes a third of a second to import: only a service with the graph on
imports it, and then in the background."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, LiteralString

from neo4j import AsyncDriver, AsyncGraphDatabase, Query
from neo4j.exceptions import DriverError, Neo4jError

from memory.graph import (
    ChunkGraph,
    EntityInfo,
    Fact,
    GraphChunk,
    GraphUnavailable,
    Neighbourhood,
    entity_key,
    normalise,
)

log = logging.getLogger(__name__)

_SCHEMA: tuple[LiteralString, ...] = (
    "CREATE CONSTRAINT entity_key IF NOT EXISTS FOR (e:Entity) REQUIRE (e.tenant, e.key) IS UNIQUE",
    "CREATE CONSTRAINT chunk_id IF NOT EXISTS FOR (c:Chunk) REQUIRE c.id IS UNIQUE",
    "CREATE INDEX chunk_document IF NOT EXISTS FOR (c:Chunk) ON (c.tenant, c.document_id)",
    "CREATE INDEX entity_tenant IF NOT EXISTS FOR (e:Entity) ON (e.tenant)",
    "CREATE FULLTEXT INDEX entity_names IF NOT EXISTS FOR (e:Entity) ON EACH [e.name]",
)


_WORD = re.compile(r"\w+", re.UNICODE)


def lucene_terms(text: str, limit: int = 32) -> str:
    """A full-text query for free text: each word quoted, joined by OR. Quoting makes every
    word a term (`AND`, `*`, `field:` included), so user text is never Lucene syntax."""
    words = [w.casefold() for w in _WORD.findall(text) if len(w) > 1]
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words[:limit]))


class Neo4jGraph:
    def __init__(
        self,
        url: str,
        *,
        auth: tuple[str, str] | None = None,
        database: str | None = None,
        connect_timeout: float = 3.0,
        query_timeout: float = 5.0,
    ) -> None:
        # A port that is open but not Bolt hangs the driver for a minute unless acquisition
        # itself is bounded.
        self._driver: AsyncDriver = AsyncGraphDatabase.driver(
            url,
            auth=auth,
            connection_acquisition_timeout=connect_timeout,
            connection_timeout=connect_timeout,
            max_transaction_retry_time=0,
        )
        self._database = database
        self._timeout = query_timeout
        self._schema_ready = False
        self.url = url

    async def close(self) -> None:
        await self._driver.close()

    async def _run(
        self, cypher: LiteralString, timeout: float | None = None, **params: Any
    ) -> list[dict[str, Any]]:
        try:
            result = await self._driver.execute_query(
                Query(cypher, timeout=timeout or self._timeout),
                params,
                database_=self._database,
            )
        except (DriverError, Neo4jError, OSError) as exc:
            raise GraphUnavailable(f"Neo4j failed: {type(exc).__name__}: {exc}") from None
        return [record.data() for record in result.records]

    async def ping(self) -> None:
        await self._run("RETURN 1 AS ok")

    async def ensure_schema(self) -> None:
        for statement in _SCHEMA:
            await self._run(statement, timeout=60)
        self._schema_ready = True

    async def _schema_first(self) -> None:
        # Neo4j may have been down when the service started: the constraints (which keep MERGE
        # from duplicating entities) and the full-text index are set up on first use instead.
        if not self._schema_ready:
            await self.ensure_schema()

    async def write(
        self, tenant: str, document_id: str, title: str, chunks: Sequence[ChunkGraph]
    ) -> None:
        """Merge a document's chunks, entities and relations in three batched statements."""
        await self._schema_first()
        entities: dict[str, dict[str, Any]] = {}
        relations: dict[tuple[str, str, str], set[str]] = {}
        for chunk in chunks:
            keys_by_name: dict[str, str] = {}
            for entity in chunk.entities:
                key = entity_key(entity.name, entity.type)
                keys_by_name[normalise(entity.name)] = key
                row = entities.setdefault(
                    key, {"key": key, "name": entity.name, "type": entity.type, "chunks": []}
                )
                if chunk.chunk_id not in row["chunks"]:
                    row["chunks"].append(chunk.chunk_id)
            for relation in chunk.relations:
                source = keys_by_name.get(normalise(relation.source))
                target = keys_by_name.get(normalise(relation.target))
                if source and target and source != target:
                    relations.setdefault((source, relation.type, target), set()).add(chunk.chunk_id)
        await self._run(
            "UNWIND $chunks AS c "
            "MERGE (n:Chunk {id: c}) "
            "SET n.tenant = $tenant, n.document_id = $document, n.title = $title",
            chunks=[c.chunk_id for c in chunks],
            tenant=tenant,
            document=document_id,
            title=title,
        )
        await self._run(
            "UNWIND $entities AS e "
            "MERGE (n:Entity {tenant: $tenant, key: e.key}) "
            "ON CREATE SET n.name = e.name, n.type = e.type "
            "WITH n, e UNWIND e.chunks AS cid "
            "MATCH (c:Chunk {id: cid}) "
            "MERGE (n)-[:MENTIONED_IN]->(c)",
            entities=list(entities.values()),
            tenant=tenant,
        )
        await self._run(
            "UNWIND $relations AS r "
            "MATCH (a:Entity {tenant: $tenant, key: r.source}) "
            "MATCH (b:Entity {tenant: $tenant, key: r.target}) "
            "MERGE (a)-[x:RELATES {tenant: $tenant, type: r.type}]->(b) "
            "ON CREATE SET x.documents = [], x.chunks = [] "
            "SET x.documents = CASE WHEN $document IN x.documents THEN x.documents "
            "ELSE x.documents + $document END, "
            "x.chunks = x.chunks + [c IN r.chunks WHERE NOT c IN x.chunks]",
            relations=[
                {"source": s, "type": t, "target": o, "chunks": sorted(c)}
                for (s, t, o), c in relations.items()
            ],
            tenant=tenant,
            document=document_id,
        )

    async def delete_document(self, tenant: str, document_id: str) -> dict[str, int]:
        """Remove a document's chunks, the relations only it supported, and the entities no
        chunk mentions any more; counts of each."""
        chunks = await self._run(
            "MATCH (c:Chunk {tenant: $tenant, document_id: $document}) "
            "DETACH DELETE c RETURN count(*) AS n",
            tenant=tenant,
            document=document_id,
        )
        relations = await self._run(
            "MATCH (:Entity {tenant: $tenant})-[x:RELATES]->() WHERE $document IN x.documents "
            "SET x.documents = [d IN x.documents WHERE d <> $document] "
            "WITH x WHERE size(x.documents) = 0 DELETE x RETURN count(*) AS n",
            tenant=tenant,
            document=document_id,
        )
        entities = await self._run(
            "MATCH (e:Entity {tenant: $tenant}) WHERE NOT (e)-[:MENTIONED_IN]->() "
            "DETACH DELETE e RETURN count(*) AS n",
            tenant=tenant,
        )
        return {
            "graph_chunks": chunks[0]["n"],
            "graph_relations": relations[0]["n"],
            "graph_entities": entities[0]["n"],
        }

    async def counts(self, tenant: str, document_id: str | None = None) -> dict[str, int]:
        if document_id is None:
            rows = await self._run(
                "CALL () { MATCH (e:Entity {tenant: $tenant}) RETURN count(e) AS entities } "
                "CALL () { MATCH (c:Chunk {tenant: $tenant}) RETURN count(c) AS chunks } "
                "CALL () { MATCH ()-[x:RELATES {tenant: $tenant}]->() "
                "RETURN count(x) AS relations } "
                "RETURN entities, chunks, relations",
                tenant=tenant,
            )
        else:
            rows = await self._run(
                "CALL () { MATCH (c:Chunk {tenant: $tenant, document_id: $document}) "
                "RETURN count(c) AS chunks } "
                "CALL () { MATCH ()-[x:RELATES {tenant: $tenant}]->() "
                "WHERE $document IN x.documents RETURN count(x) AS relations } "
                "CALL () { MATCH (e:Entity {tenant: $tenant})-[:MENTIONED_IN]->"
                "(:Chunk {document_id: $document}) RETURN count(DISTINCT e) AS entities } "
                "RETURN entities, chunks, relations",
                tenant=tenant,
                document=document_id,
            )
        return {k: int(v) for k, v in rows[0].items()}

    async def search_entities(self, tenant: str, text: str, limit: int) -> list[EntityInfo]:
        query = lucene_terms(text)
        if not query:
            return []
        await self._schema_first()
        rows = await self._run(
            "CALL db.index.fulltext.queryNodes('entity_names', $query) YIELD node, score "
            "WHERE node.tenant = $tenant "
            "WITH node, score ORDER BY score DESC LIMIT $limit "
            "RETURN node.key AS key, node.name AS name, node.type AS type, score, "
            "COUNT { (node)-[:MENTIONED_IN]->() } AS mentions",
            query=query,
            tenant=tenant,
            limit=limit,
        )
        return [
            EntityInfo(r["key"], r["name"], r["type"], float(r["score"]), int(r["mentions"]))
            for r in rows
        ]

    async def neighbourhood(
        self, tenant: str, key: str, hops: int, limit: int
    ) -> Neighbourhood | None:
        """The entity, the relations on paths of up to `hops` (1 or 2) from it, and the chunks
        that mention it or its neighbours (nearest first), at most `limit` of each."""
        found = await self._run(
            "MATCH (e:Entity {tenant: $tenant, key: $key}) "
            "RETURN e.name AS name, e.type AS type, "
            "COUNT { (e)-[:MENTIONED_IN]->() } AS mentions",
            tenant=tenant,
            key=key,
        )
        if not found:
            return None
        entity = EntityInfo(key, found[0]["name"], found[0]["type"], None, found[0]["mentions"])
        # The hop bound is chosen from two fixed queries: path lengths cannot be parameters.
        paths: LiteralString = (
            "MATCH p = (e:Entity {tenant: $tenant, key: $key})-[:RELATES*1..2]-(n:Entity) "
            if hops >= 2
            else "MATCH p = (e:Entity {tenant: $tenant, key: $key})-[:RELATES]-(n:Entity) "
        )
        rows = await self._run(
            paths + "WHERE all(r IN relationships(p) WHERE r.tenant = $tenant) "
            "AND n <> e "
            "WITH p, n ORDER BY length(p) LIMIT $limit "
            "RETURN [x IN nodes(p) | x.name] AS names, "
            "[r IN relationships(p) | [startNode(r).name, r.type, endNode(r).name]] AS rels, "
            "n.key AS target",
            tenant=tenant,
            key=key,
            limit=limit,
        )
        facts: dict[tuple[str, str, str], Fact] = {}
        path_to: dict[str, tuple[tuple[str, ...], int]] = {key: ((entity.name,), 0)}
        for row in rows:
            for source, kind, target in row["rels"]:
                facts.setdefault((source, kind, target), Fact(source, kind, target))
            names: list[str] = row["names"]
            rels: list[list[str]] = row["rels"]
            steps: list[str] = [names[0]]
            for index, (_, kind, _) in enumerate(rels):
                steps += [kind, names[index + 1]]
            path_to.setdefault(row["target"], (tuple(steps), len(rels)))
        chunk_rows = await self._run(
            "UNWIND $keys AS k "
            "MATCH (e:Entity {tenant: $tenant, key: k})-[:MENTIONED_IN]->(c:Chunk) "
            "RETURN k AS key, c.id AS chunk, c.document_id AS document",
            keys=list(path_to),
            tenant=tenant,
        )
        chunks: dict[str, GraphChunk] = {}
        for row in sorted(chunk_rows, key=lambda r: path_to[r["key"]][1]):
            path, hop_count = path_to[row["key"]]
            chunks.setdefault(
                row["chunk"], GraphChunk(row["chunk"], row["document"], path, hop_count)
            )
        return Neighbourhood(entity, list(facts.values())[:limit], list(chunks.values())[:limit])
