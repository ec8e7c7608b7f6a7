"""Hybrid retrieval: dense and BM25 candidates from Qdrant fused by reciprocal rank, then
re-ranked."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from memory.sparse import encode_query, terms
from memory.store import ChunkStore, Hit, SearchFilter
from switchboard.embeddings import Embedder
from switchboard.settings import RetrievalSettings

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

    def public(self) -> dict[str, Any]:
        return {
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


class Retriever:
    def __init__(self, store: ChunkStore, embedder: Embedder, settings: RetrievalSettings) -> None:
        self._store = store
        self._embedder = embedder
        self._settings = settings

    async def retrieve(self, query: str, where: SearchFilter, k: int | None = None) -> list[Source]:
        """The `k` best passages for `query` among the chunks `where` allows."""
        limit = k or self._settings.top_k
        dense = (await self._embedder.embed([query]))[0]
        hits = await self._store.hybrid_search(
            where, dense, encode_query(query), self._settings.candidates
        )
        if self._settings.rerank:
            hits = rerank(query, dense, hits)
        return [_source(hit) for hit in hits[:limit]]


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
