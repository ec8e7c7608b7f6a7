"""Retrieval quality over the shipped corpus (evals/corpus, 50+ documents) with the real local
embedder and Qdrant local mode: recall@5 and MRR for the labelled questions, written to
evals/results/retrieval.json."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from memory.ingest import Ingestor, VectorStage
from memory.qdrant import QdrantStore
from memory.retrieval import Retriever
from memory.store import SearchFilter
from switchboard.embeddings import ThreadedEmbedder
from switchboard.local_embedder import LocalEmbedder
from switchboard.settings import RetrievalSettings

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "evals" / "corpus"
QUESTIONS = ROOT / "evals" / "datasets" / "retrieval.jsonl"
RESULTS = ROOT / "evals" / "results"
SUFFIXES = {".md", ".txt", ".html"}


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


@dataclass
class Corpus:
    retriever: Retriever
    store: QdrantStore
    ingestor: Ingestor
    files: list[Path]


@pytest.fixture(scope="module")
async def corpus(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Corpus]:
    settings = RetrievalSettings()
    store = QdrantStore(
        collection="eval", url=None, api_key=None, path=tmp_path_factory.mktemp("qdrant")
    )
    embedder = ThreadedEmbedder(LocalEmbedder(threads=2), batch_size=32)
    await store.ensure_schema(embedder.dimension)
    ingestor = Ingestor(store, settings, [VectorStage(store, embedder, 32)])
    files = sorted(
        p
        for p in CORPUS.rglob("*")
        if p.suffix in SUFFIXES and p.name not in {"README.md", "LICENSE.md"}
    )
    for path in files:
        prepared = await ingestor.prepare_file(
            "eval", str(path.relative_to(CORPUS)), path.read_bytes()
        )
        record = await ingestor.run(prepared)
        assert record.status.value == "ready", (path, record.error)
    yield Corpus(Retriever(store, embedder, settings), store, ingestor, files)
    await store.close()


async def test_the_corpus_is_big_enough(corpus: Corpus) -> None:
    assert len(corpus.files) >= 50
    assert len(QUESTIONS.read_text().splitlines()) >= 30


async def test_hybrid_retrieval_finds_the_passage(corpus: Corpus) -> None:
    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    ranks: list[int | None] = []
    misses = []
    for item in questions:
        sources = await corpus.retriever.retrieve(
            item["question"], SearchFilter(tenant="eval"), k=5
        )
        passage = _normal(item["passage"])
        rank = next(
            (
                position
                for position, source in enumerate(sources, start=1)
                if source.source in item["documents"] and passage in _normal(source.text)
            ),
            None,
        )
        ranks.append(rank)
        if rank is None:
            misses.append(item["id"])
    recall = sum(r is not None for r in ranks) / len(ranks)
    mrr = sum(1 / r for r in ranks if r is not None) / len(ranks)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "retrieval.json").write_text(
        json.dumps(
            {
                "questions": len(ranks),
                "recall_at_5": round(recall, 4),
                "mrr": round(mrr, 4),
                "misses": misses,
            },
            indent=2,
        )
        + "\n"
    )
    assert recall >= 0.8, (recall, misses)
    assert mrr >= 0.6, mrr


async def test_reingest_is_a_no_op_and_delete_removes_everything(corpus: Corpus) -> None:
    path = corpus.files[0]
    name = str(path.relative_to(CORPUS))
    before = await corpus.store.count_chunks("eval")
    again = await corpus.ingestor.prepare_file("eval", name, path.read_bytes())
    assert again.done
    assert await corpus.store.count_chunks("eval") == before
    record = again.record
    removed = await corpus.ingestor.delete("eval", record.id)
    assert removed == {"documents": 1, "chunks": record.chunk_count}
    assert await corpus.store.count_chunks("eval", record.id) == 0
    assert await corpus.store.count_chunks("eval") == before - record.chunk_count
    assert await corpus.store.get_document("eval", record.id) is None
    # Put it back for the other tests of the module.
    await corpus.ingestor.run(await corpus.ingestor.prepare_file("eval", name, path.read_bytes()))


async def test_another_tenant_finds_nothing(corpus: Corpus) -> None:
    sources = await corpus.retriever.retrieve("funicular", SearchFilter(tenant="someone-else"))
    assert sources == []
