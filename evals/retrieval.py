"""The retrieval suite: the Kestrel Ridge corpus ingested by the real pipeline (chunking, the
configured embedder, Qdrant local mode), the labelled questions asked of the real `Retriever`,
and recall@k and MRR over the chunks it returns.

A question is labelled with a document and an exact passage of it. Chunk ids are derived from the
tenant and the document's bytes (`memory.documents.chunk_id`), so they are resolved when the
corpus is ingested: a question's relevant chunks are those of its document whose text contains
the passage (white space and case aside). A passage cut by a chunk boundary has no such chunk;
then the chunks holding its first or its second half count, and the row says so (`split`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from evals._data import CORPUS, RETRIEVAL, corpus_files, described, normalise, read_jsonl, rounded
from memory.chunking import Chunk
from memory.documents import DocumentRecord, chunk_id
from memory.ingest import Ingestor, IngestStage, VectorStage
from memory.qdrant import QdrantStore
from memory.retrieval import Retrieved, Retriever
from memory.store import SearchFilter
from switchboard.embeddings import BackendEmbedder, Embedder, ThreadedEmbedder
from switchboard.llm import LLMPool
from switchboard.settings import Settings

TENANT = "eval-kestrel"
KS = (1, 5, 10)


class Searcher(Protocol):
    """What the suite asks: the `Retriever`'s `search` (a test wraps it to degrade it)."""

    async def search(self, query: str, where: SearchFilter, k: int | None = None) -> Retrieved: ...


@dataclass
class Index:
    """The ingested corpus: its retriever and, per document source, its chunks (id, text)."""

    retriever: Retriever
    chunks: dict[str, list[tuple[str, str]]]
    ingest_s: float
    embedder: str


@dataclass
class _ChunkRecorder:
    """An ingestion stage that keeps each document's chunk ids and texts, as ingested."""

    chunks: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    name: str = "eval-chunks"

    async def run(self, record: DocumentRecord, chunks: Sequence[Chunk]) -> None:
        self.chunks[record.source] = [(chunk_id(record.id, c.index), c.text) for c in chunks]

    async def undo(self, tenant: str, document_id: str) -> dict[str, int]:
        return {}


async def _embedder(settings: Settings, llm: LLMPool) -> Embedder:
    if settings.embeddings.mode == "backend":
        backend = BackendEmbedder(llm, settings.embeddings.batch_size)
        await backend.probe()
        return backend
    from switchboard.local_embedder import LocalEmbedder  # onnxruntime: only when used

    return ThreadedEmbedder(
        LocalEmbedder(settings.embeddings.threads), settings.embeddings.batch_size
    )


@asynccontextmanager
async def open_index(settings: Settings, path: Path | None = None) -> AsyncIterator[Index]:
    """Ingest the corpus into a fresh Qdrant (local mode, under `path` or a temporary folder)
    with the service's retrieval and embedding settings; the knowledge graph is not used."""
    with tempfile.TemporaryDirectory(prefix="switchboard-eval-") as scratch:
        llm = LLMPool(settings.llm, settings.llm.backends)
        store = QdrantStore(
            collection="eval", url=None, api_key=None, path=path or Path(scratch) / "qdrant"
        )
        try:
            embedder = await _embedder(settings, llm)
            await store.ensure_schema(embedder.dimension)
            recorder = _ChunkRecorder()
            config = settings.retrieval
            stages: list[IngestStage] = [
                VectorStage(store, embedder, settings.embeddings.batch_size),
                recorder,
            ]
            ingestor = Ingestor(store, config, stages)
            started = time.perf_counter()
            for file in corpus_files():
                name = str(file.relative_to(CORPUS))
                prepared = await ingestor.prepare_file(TENANT, name, file.read_bytes())
                record = await ingestor.run(prepared)
                if record.status.value != "ready":
                    raise RuntimeError(f"could not ingest {name}: {record.error}")
            yield Index(
                Retriever(store, embedder, config, None, settings.graph),
                recorder.chunks,
                time.perf_counter() - started,
                settings.embeddings.mode,
            )
        finally:
            await store.close()
            await llm.aclose()


def relevant_chunks(index: Index, document: str, passage: str) -> tuple[list[str], bool]:
    """The ids of the chunks that hold `passage` of `document`, and whether it was split."""
    chunks = index.chunks.get(document)
    if chunks is None:
        raise KeyError(f"the dataset names a document that is not in the corpus: {document}")
    wanted = normalise(passage)
    whole = [cid for cid, text in chunks if wanted in normalise(text)]
    if whole:
        return whole, False
    words = wanted.split()
    halves = (" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :]))
    return [cid for cid, text in chunks if any(h in normalise(text) for h in halves)], True


async def run_retrieval(
    index: Index, searcher: Searcher | None = None, limit: int | None = None
) -> dict[str, Any]:
    """Ask every question (or the first `limit`) and score the ranking: recall@1/5/10 (a
    relevant chunk among the first k) and MRR (over the first 10), with a row per question."""
    items = read_jsonl(RETRIEVAL)[:limit]
    search = searcher or index.retriever
    rows: list[dict[str, Any]] = []
    latencies: list[float] = []
    for item in items:
        relevant, split = relevant_chunks(index, item["document"], item["passage"])
        started = time.perf_counter()
        found = await search.search(item["question"], SearchFilter(tenant=TENANT), k=max(KS))
        latencies.append(time.perf_counter() - started)
        ids = [s.chunk_id for s in found.sources]
        rank = next((n for n, cid in enumerate(ids, start=1) if cid in relevant), None)
        rows.append(
            {
                "id": item["id"],
                "rank": rank,
                "relevant": relevant,
                "split": split,
                "retrieved": ids,
            }
        )
    count = len(rows) or 1
    metrics: dict[str, float | None] = {
        f"recall@{k}": rounded(sum(r["rank"] is not None and r["rank"] <= k for r in rows) / count)
        for k in KS
    }
    metrics["mrr"] = rounded(sum(1 / r["rank"] for r in rows if r["rank"]) / count)
    latencies.sort()
    return {
        "suite": "retrieval",
        "dataset": described(RETRIEVAL),
        "questions": len(rows),
        "metrics": metrics,
        "split_passages": sum(r["split"] for r in rows),
        "ingest_s": round(index.ingest_s, 2),
        "chunks": sum(len(c) for c in index.chunks.values()),
        "embeddings": index.embedder,
        "search_ms_p50": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        "misses": [r["id"] for r in rows if r["rank"] is None],
        "rows": rows,
    }
