"""Graph-augmented retrieval against vector-only retrieval, over the corpus of the RAG issue
(evals/corpus), on questions that need a relation between two documents
(evals/datasets/relations.jsonl): recall@5 of each, written to evals/results/graph_retrieval.json.

The knowledge graph is built by the real ingestion stage (`GraphStage`: the extraction prompt and
schema, validation, entity resolution, batched MERGE into the real Neo4j). Only the model is
replayed: its answers come from evals/graph/python_reference_extraction.jsonl, an extraction of
each document made offline by a large model following the same prompt and schema (no model that
runs on this machine extracts usefully; SmolLM2-135M does not). For a chunk, the replay answers
with that document's entities whose names occur in the chunk and the relations between them — what
a per-chunk extraction by that model would have found.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from memory.graph import normalise
from memory.graph_extract import GraphStage
from memory.ingest import Ingestor, VectorStage
from memory.neo4j_graph import Neo4jGraph
from memory.qdrant import QdrantStore
from memory.retrieval import Retriever, Source
from memory.store import SearchFilter
from switchboard.embeddings import ThreadedEmbedder
from switchboard.llm import Completion, Message, Usage
from switchboard.local_embedder import LocalEmbedder
from switchboard.settings import GraphSettings, RetrievalSettings, Role

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "evals" / "corpus"
EXTRACTION = ROOT / "evals" / "graph" / "python_reference_extraction.jsonl"
QUESTIONS = ROOT / "evals" / "datasets" / "relations.jsonl"
RESULTS = ROOT / "evals" / "results"
TENANT = "graph-eval"
_TEXT = re.compile(r"<<<TEXT\n(.*)\nTEXT>>>", re.DOTALL)


class ReplayExtractor:
    """The extractor model, replayed from the committed extraction of the current document."""

    def __init__(self, extraction: dict[str, dict[str, Any]]) -> None:
        self._extraction = extraction
        self.document = ""
        self.requests = 0

    async def complete(self, role: Role, messages: Sequence[Message], **params: Any) -> Completion:
        assert role is Role.EXTRACTOR and params["response_format"]["type"] == "json_schema"
        self.requests += 1
        match = _TEXT.search(str(messages[-1]["content"]))
        assert match is not None
        chunk = normalise(match.group(1))
        gold = self._extraction[self.document]
        entities = [e for e in gold["entities"] if normalise(e["name"]) in chunk]
        present = {normalise(e["name"]) for e in entities}
        relations = [
            r
            for r in gold["relations"]
            if normalise(r["source"]) in present and normalise(r["target"]) in present
        ]
        text = json.dumps({"entities": entities, "relations": relations})
        return Completion(text, "replay", "offline-extraction", "stop", Usage(0, 0, True))


@dataclass
class Built:
    retriever: Retriever
    extractor: ReplayExtractor


@pytest.fixture(scope="module")
async def built(tmp_path_factory: pytest.TempPathFactory, neo4j_url: str) -> AsyncIterator[Built]:
    settings = RetrievalSettings()
    graph_settings = GraphSettings()
    store = QdrantStore(
        collection="graph_eval", url=None, api_key=None, path=tmp_path_factory.mktemp("qdrant")
    )
    graph = Neo4jGraph(neo4j_url, query_timeout=30)
    await graph.ensure_schema()
    embedder = ThreadedEmbedder(LocalEmbedder(threads=2), batch_size=32)
    await store.ensure_schema(embedder.dimension)
    extraction = {
        item["document"]: item for item in map(json.loads, EXTRACTION.read_text().splitlines())
    }
    extractor = ReplayExtractor(extraction)
    stages = [VectorStage(store, embedder, 32), GraphStage(graph, extractor, graph_settings)]
    ingestor = Ingestor(store, settings, stages)
    for name in sorted(extraction):
        extractor.document = name
        path = CORPUS / name
        record = await ingestor.run(await ingestor.prepare_file(TENANT, name, path.read_bytes()))
        assert record.status.value == "ready", (name, record.error)
    yield Built(Retriever(store, embedder, settings, graph, graph_settings), extractor)
    await graph.close()
    await store.close()


def _found(sources: list[Source], documents: list[str]) -> float:
    seen = {s.source for s in sources}
    return sum(d in seen for d in documents) / len(documents)


async def test_graph_augmented_recall_against_vector_only(built: Built) -> None:
    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    assert len(questions) >= 15
    vector_scores, graph_scores, rows = [], [], []
    where = SearchFilter(tenant=TENANT)
    for item in questions:
        vector = await built.retriever.retrieve(item["question"], where, k=5)
        augmented = await built.retriever.search(item["question"], where, k=5)
        assert augmented.warning is None
        v, g = _found(vector, item["documents"]), _found(augmented.sources, item["documents"])
        vector_scores.append(v)
        graph_scores.append(g)
        rows.append(
            {
                "id": item["id"],
                "vector": v,
                "graph": g,
                "linked": [e.name for e in augmented.entities],
                "paths": [list(s.graph_path) for s in augmented.sources if s.graph_path],
            }
        )
    vector_recall = sum(vector_scores) / len(questions)
    graph_recall = sum(graph_scores) / len(questions)
    both_vector = sum(s == 1 for s in vector_scores) / len(questions)
    both_graph = sum(s == 1 for s in graph_scores) / len(questions)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "graph_retrieval.json").write_text(
        json.dumps(
            {
                "questions": len(questions),
                "extraction_requests": built.extractor.requests,
                "recall_at_5_vector_only": round(vector_recall, 4),
                "recall_at_5_graph_augmented": round(graph_recall, 4),
                "both_documents_at_5_vector_only": round(both_vector, 4),
                "both_documents_at_5_graph_augmented": round(both_graph, 4),
                "per_question": rows,
            },
            indent=2,
        )
        + "\n"
    )
    # Recall here is the share of the two needed documents among the top five chunks.
    assert built.extractor.requests > 0
    assert any(row["paths"] for row in rows), "the graph never contributed a chunk"
    # The graph is there to find the second document; it must not do worse than vectors alone.
    assert graph_recall >= vector_recall, (graph_recall, vector_recall)
