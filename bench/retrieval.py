"""Ingestion throughput and retrieval latency of the embedded default: Qdrant's local mode (a
folder, as `switchboard serve` uses it) and the local all-MiniLM-L6-v2 embedder.

Ingestion is measured end to end (embed + write) on real-sized chunks; retrieval latency
(query embedding + hybrid search + re-ranking) at several collection sizes, filled with
synthetic vectors because embedding 50k chunks locally would take about half an hour and the
search does not depend on where the vectors came from.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from memory.documents import document_id
from memory.qdrant import QdrantStore
from memory.retrieval import Retriever
from memory.sparse import encode_document
from memory.store import ChunkRecord, SearchFilter
from switchboard.embeddings import ThreadedEmbedder
from switchboard.local_embedder import LocalEmbedder
from switchboard.settings import RetrievalSettings

_WORDS = (
    "funicular",
    "railway",
    "car",
    "winter",
    "schedule",
    "observatory",
    "dome",
    "telescope",
    "hydro",
    "turbine",
    "volunteer",
    "visitor",
    "centre",
    "ticket",
    "maintenance",
    "inspection",
    "cable",
    "brake",
    "station",
    "summit",
    "valley",
    "ridge",
    "kestrel",
    "incident",
    "report",
    "engineer",
    "budget",
    "council",
    "meeting",
    "weather",
    "snow",
    "pass",
    "season",
    "bridge",
    "track",
    "signal",
    "rota",
    "training",
    "safety",
    "audit",
    "lens",
    "mirror",
    "spectrum",
    "river",
    "dam",
    "pipe",
    "valve",
)


_RUN = uuid.uuid4().hex[:8]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _ingestion(
    embedder: ThreadedEmbedder, folder: Path, chunks: int, words: int, url: str | None
) -> dict[str, Any]:
    rng = random.Random(7)
    store = QdrantStore(collection=f"bench_ingest_{_RUN}", url=url, api_key=None, path=folder)
    await store.ensure_schema(embedder.dimension)
    texts = [_text(rng, words) for _ in range(chunks)]
    doc = document_id("bench", "ingest")
    started = time.perf_counter()
    embed_seconds = 0.0
    for start in range(0, chunks, 32):
        batch = texts[start : start + 32]
        t = time.perf_counter()
        vectors = await embedder.embed(batch)
        embed_seconds += time.perf_counter() - t
        await store.upsert_chunks(
            [
                ChunkRecord(
                    doc,
                    "bench",
                    start + i,
                    text,
                    "T",
                    "bench",
                    None,
                    None,
                    v,
                    encode_document(text),
                )
                for i, (text, v) in enumerate(zip(batch, vectors, strict=True))
            ]
        )
    total = time.perf_counter() - started
    await store.close()
    return {
        "chunks": chunks,
        "words_per_chunk": words,
        "chunks_per_s": round(chunks / total, 1),
        "embedding_share": round(embed_seconds / total, 3),
    }


async def _fill(store: QdrantStore, size: int, have: int, rng: random.Random) -> None:
    doc = document_id("bench", "search")
    vectors = np.random.default_rng(size).normal(size=(size - have, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for start in range(0, size - have, 512):
        block = vectors[start : start + 512].tolist()
        records = []
        for i, vector in enumerate(block):
            text = _text(rng, 150)
            records.append(
                ChunkRecord(
                    doc,
                    "bench",
                    have + start + i,
                    text,
                    "T",
                    "bench",
                    None,
                    None,
                    vector,
                    encode_document(text),
                )
            )
        await store.upsert_chunks(records)
    await store.publish("bench", doc)


async def _latency(
    sizes: list[int], queries: int, embedder: ThreadedEmbedder, folder: Path, url: str | None
) -> list[dict[str, Any]]:
    rng = random.Random(11)
    store = QdrantStore(collection=f"bench_search_{_RUN}", url=url, api_key=None, path=folder)
    await store.ensure_schema(embedder.dimension)
    retriever = Retriever(store, embedder, RetrievalSettings())
    where = SearchFilter(tenant="bench")
    results: list[dict[str, Any]] = []
    have = 0
    for size in sizes:
        started = time.perf_counter()
        await _fill(store, size, have, rng)
        fill_seconds = time.perf_counter() - started
        have = size
        samples = []
        for _ in range(queries):
            query = _text(rng, 8)
            t = time.perf_counter()
            await retriever.retrieve(query, where)
            samples.append((time.perf_counter() - t) * 1000)
        results.append(
            {
                "chunks": size,
                "p50_ms": round(_percentile(samples, 0.5), 2),
                "p99_ms": round(_percentile(samples, 0.99), 2),
                "mean_ms": round(statistics.fmean(samples), 2),
                "write_points_per_s": round(
                    (size - (results[-1]["chunks"] if results else 0)) / fill_seconds, 1
                ),
            }
        )
        row = results[-1]
        print(
            f"retrieval at {size:>6} chunks: p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms",
            flush=True,
        )
    await store.close()
    return results


def run(
    sizes: tuple[int, ...] = (1000, 10000, 50000), queries: int = 200, url: str | None = None
) -> dict[str, Any]:
    """Ingestion and retrieval figures; against the Qdrant server at `url` when given (in new
    `bench_*_<run>` collections, left for inspection), else local mode in a temporary folder."""
    embedder = ThreadedEmbedder(LocalEmbedder(threads=2), batch_size=32)
    query_ms = []
    for _ in range(50):
        t = time.perf_counter()
        asyncio.run(embedder.embed(["who rebuilt the funicular car in 2019"]))
        query_ms.append((time.perf_counter() - t) * 1000)
    with tempfile.TemporaryDirectory() as tmp:
        ingestion = [
            asyncio.run(_ingestion(embedder, Path(tmp) / f"ingest-{words}", 256, words, url))
            for words in (40, 150)
        ]
        for row in ingestion:
            print(
                f"ingestion, {row['words_per_chunk']}-word chunks: {row['chunks_per_s']} chunks/s",
                flush=True,
            )
        latency = asyncio.run(_latency(list(sizes), queries, embedder, Path(tmp) / "search", url))
    return {
        "benchmark": "retrieval",
        "store": url or "qdrant-local",
        "embedder": LocalEmbedder.model_id,
        "query_embedding_p50_ms": round(_percentile(query_ms, 0.5), 2),
        "ingestion": ingestion,
        "latency": latency,
    }
