"""Hybrid retrieval: dense and BM25 candidates from Qdrant fused by reciprocal rank, then
re-ranked; with a knowledge graph, the chunks reached from the question's entities join them.

Graph augmentation (`Retriever.search`): the question's entities are linked through the graph's
full-text index (a candidate counts only when every word of its name is in the question), their
neighbourhoods (1-2 hops, bounded) give facts and the chunks that mention the entities reached.
Those chunks are ranked by what reached them: each linked entity adds its specificity (rarer
entities say more, see `_specificity`), divided by 1 + hops, so a chunk reached from two specific
entities of the question comes first. That list and the vector list are fused by reciprocal
rank. A chunk reached through the graph carries the path that led to it. A graph failure leaves
the vector results and a warning.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

from memory.graph import EntityInfo, Fact, KnowledgeGraph, normalise
from memory.sparse import encode_query, terms
from memory.store import ChunkStore, Hit, SearchFilter
from switchboard import metrics
from switchboard.embeddings import Embedder
from switchboard.errors import SwitchboardError
from switchboard.settings import GraphSettings, RetrievalSettings
from switchboard.tracing import current as current_tracing

log = logging.getLogger(__name__)
_RRF_K = 60

# Re-ranking blends the query-chunk cosine (meaning) with the share of the query's terms the chunk
# contains (exact names, codes and numbers, which small embedders blur).
_COSINE_WEIGHT = 0.6
_COVERAGE_WEIGHT = 0.4


@dataclass(frozen=True, slots=True)
class Source:
    """A retrieved passage, as the rag route cites it and the stream shows it."""

    document_id: str
    chunk_id: str
    chunk_index: int
    title: str
    source: str
    section: str | None
    page: int | None
    score: float
    text: str
    graph_path: tuple[str, ...] | None = None  # entity, relation, entity, ... that led here

    def public(self) -> dict[str, Any]:
        return {
            "graph_path": list(self.graph_path) if self.graph_path else None,
            "document_id": self.document_id,
            "chunk_id": self.chunk_id,
            "chunk_index": self.chunk_index,
            "title": self.title,
            "source": self.source,
            "section": self.section,
            "page": self.page,
            "score": round(self.score, 4),
            "text": self.text,
        }


@dataclass(slots=True)
class Retrieved:
    sources: list[Source]
    facts: list[Fact] = field(default_factory=list)
    entities: list[EntityInfo] = field(default_factory=list)
    warning: str | None = None  # the graph failed; these are vector results only


class Retriever:
    def __init__(
        self,
        store: ChunkStore,
        embedder: Embedder,
        settings: RetrievalSettings,
        graph: KnowledgeGraph | None = None,
        graph_settings: GraphSettings | None = None,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._settings = settings
        self.graph = graph
        self._graph_settings = graph_settings or GraphSettings()

    async def search(self, query: str, where: SearchFilter, k: int | None = None) -> Retrieved:
        """`retrieve`, augmented by the knowledge graph when there is one; a span of the run's
        trace, with the look-ups under it."""
        with current_tracing().span("retrieval", kind="retriever", input={"query": query}) as span:
            found = await self._search(query, where, k)
            span.update(
                output={"sources": len(found.sources), "facts": len(found.facts)},
                metadata={"graph": self.graph is not None, "warning": found.warning},
            )
        return found

    async def _search(self, query: str, where: SearchFilter, k: int | None) -> Retrieved:
        limit = k or self._settings.top_k
        if self.graph is None:
            return Retrieved(await self.retrieve(query, where, limit))
        dense_task = asyncio.create_task(self._embedder.embed([query]))
        try:
            linked, facts, reached = await self._from_graph(self.graph, query, where.tenant)
        except SwitchboardError as exc:
            log.warning("graph retrieval failed, using vectors only: %s", exc.message)
            dense = (await dense_task)[0]
            return Retrieved(await self._vector(query, dense, where, limit), warning=exc.message)
        dense = (await dense_task)[0]
        vector = await self._vector(query, dense, where, self._settings.candidates)
        graph_hits = await self._store.get_chunks(where.tenant, [c.chunk_id for c in reached])
        if where.document_ids:
            graph_hits = [h for h in graph_hits if h.document_id in where.document_ids]
        paths = {c.chunk_id: c.path for c in reached}
        # The graph's own ranking (how specific the entities that reach a chunk are, and how
        # many of them); the re-ranker's order only breaks ties.
        weight = {c.chunk_id: c.weight for c in reached}
        graph_ranked = sorted(rerank(query, dense, graph_hits), key=lambda h: -weight[h.chunk_id])
        return Retrieved(
            _fuse(vector, [_source(h) for h in graph_ranked], paths, limit),
            facts[: self._graph_settings.max_facts],
            linked,
        )

    async def _from_graph(
        self, graph: KnowledgeGraph, query: str, tenant: str
    ) -> tuple[list[EntityInfo], list[Fact], list[_Reached]]:
        config = self._graph_settings
        with (
            current_tracing().span("neo4j", kind="retriever", input={"query": query}) as span,
            metrics.timed("neo4j", "graph_lookup"),
        ):
            found = await self._look_up(graph, query, tenant, config)
            linked, facts, reached = found
            span.update(
                output={"entities": len(linked), "facts": len(facts), "chunks": len(reached)}
            )
        return found

    async def _look_up(
        self, graph: KnowledgeGraph, query: str, tenant: str, config: GraphSettings
    ) -> tuple[list[EntityInfo], list[Fact], list[_Reached]]:
        candidates = await graph.search_entities(tenant, query, config.linked_entities * 4)
        linked = link_entities(query, candidates)[: config.linked_entities]
        hoods = await asyncio.gather(
            *(graph.neighbourhood(tenant, e.id, config.hops, config.max_paths) for e in linked)
        )
        facts: dict[Fact, None] = {}
        reached: dict[str, _Reached] = {}
        for hood in hoods:
            if hood is None:
                continue
            facts.update(dict.fromkeys(hood.facts))
            weight = _specificity(hood.entity)
            for chunk in hood.chunks:
                known = reached.get(chunk.chunk_id)
                if known is None:
                    known = _Reached(chunk.chunk_id, chunk.path, chunk.hops)
                    reached[chunk.chunk_id] = known
                elif chunk.hops < known.hops:
                    known.path, known.hops = chunk.path, chunk.hops
                known.weight += weight / (1 + chunk.hops)
        ordered = sorted(reached.values(), key=lambda c: -c.weight)[: self._settings.candidates]
        return linked, list(facts), ordered

    async def _vector(
        self, query: str, dense: list[float], where: SearchFilter, limit: int
    ) -> list[Source]:
        with (
            current_tracing().span("qdrant", kind="retriever", input={"query": query}) as span,
            metrics.timed("qdrant", "hybrid_search"),
        ):
            hits = await self._store.hybrid_search(
                where, dense, encode_query(query), self._settings.candidates
            )
            span.update(output={"hits": len(hits)})
        if self._settings.rerank:
            hits = rerank(query, dense, hits)
        return [_source(hit) for hit in hits[:limit]]

    async def retrieve(self, query: str, where: SearchFilter, k: int | None = None) -> list[Source]:
        """The `k` best passages for `query` among the chunks `where` allows."""
        dense = (await self._embedder.embed([query]))[0]
        return await self._vector(query, dense, where, k or self._settings.top_k)


@dataclass(slots=True)
class _Reached:
    """A chunk reached from the linked entities: the shortest path, and its weight, the sum
    over the entities that reach it of their specificity, halved per hop."""

    chunk_id: str
    path: tuple[str, ...]
    hops: int
    weight: float = 0.0


def _specificity(entity: EntityInfo) -> float:
    """How much reaching a chunk through `entity` says: an entity named in many chunks ("is",
    "list") says little, one named in a few says much (1 for an entity in no other chunk)."""
    return 1.0 / math.log2(2 + entity.mentions)


def link_entities(query: str, candidates: list[EntityInfo]) -> list[EntityInfo]:
    """The candidates the question names: every word of the entity's name occurs in the
    question (the full-text index also returns partial matches). Longer names first, since
    "with statement" says more than "statement"."""
    words = set(normalise(query).replace("?", " ").split())
    text = normalise(query)
    named = [
        c
        for c in candidates
        if normalise(c.name) in text or set(normalise(c.name).split()) <= words
    ]
    return sorted(named, key=lambda c: (-len(c.name.split()), -(c.score or 0)))


def _fuse(
    vector: list[Source], graph: list[Source], paths: dict[str, tuple[str, ...]], limit: int
) -> list[Source]:
    """Reciprocal-rank fusion of the vector and graph rankings; a chunk reached through the
    graph keeps its path."""
    scores: dict[str, float] = {}
    by_id: dict[str, Source] = {}
    for ranking in (vector, graph):
        for rank, source in enumerate(ranking):
            scores[source.chunk_id] = scores.get(source.chunk_id, 0.0) + 1 / (_RRF_K + rank + 1)
            by_id.setdefault(source.chunk_id, source)
    best = sorted(scores, key=lambda c: scores[c], reverse=True)[:limit]
    return [replace(by_id[c], score=scores[c], graph_path=paths.get(c)) for c in best]


def rerank(query: str, query_vector: list[float], hits: list[Hit]) -> list[Hit]:
    """Hits re-scored by cosine and query-term coverage, best first."""
    wanted = set(terms(query))
    rescored = []
    for hit in hits:
        cosine = sum(a * b for a, b in zip(query_vector, hit.dense, strict=False))
        coverage = (
            len(wanted & set(terms(f"{hit.title} {hit.text}"))) / len(wanted) if wanted else 0
        )
        score = _COSINE_WEIGHT * cosine + _COVERAGE_WEIGHT * coverage
        rescored.append((score, hit))
    rescored.sort(key=lambda pair: pair[0], reverse=True)
    return [replace(hit, score=score) for score, hit in rescored]


def _source(hit: Hit) -> Source:
    return Source(
        document_id=hit.document_id,
        chunk_id=hit.chunk_id,
        chunk_index=hit.index,
        title=hit.title,
        source=hit.source,
        section=hit.section,
        page=hit.page,
        score=hit.score,
        text=hit.text,
    )
