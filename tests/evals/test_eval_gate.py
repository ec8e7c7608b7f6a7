"""The evaluation gate that CI runs: the retrieval suite over the Kestrel corpus (real local
embedder, Qdrant local mode, the real `Retriever`) and the routing suite's plumbing (the real
service in front of the scripted backend, every labelled question) must not fall below
evals/baseline.json; a deliberately degraded retriever must fail the gate; and an evaluation is
recorded in Langfuse as a dataset run with scores (the real SDK, sent to a loopback receiver)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from evals._langfuse import record
from evals._service import Backend
from evals.gate import check, load_baseline
from evals.retrieval import Index, open_index, run_retrieval
from evals.routing import run_routing
from memory.retrieval import Retrieved
from memory.store import SearchFilter
from switchboard.settings import BackendConfig, Settings, TracingSettings
from tests.backends import ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.langfuse_sink import LangfuseSink
from tests.service_runner import running_service


@pytest.fixture(scope="module")
async def index(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Index]:
    settings = Settings(local={"mode": "off"}, embeddings={"mode": "local"})  # type: ignore[arg-type]
    async with open_index(settings, tmp_path_factory.mktemp("qdrant")) as built:
        yield built


@pytest.fixture(scope="module")
async def retrieval(index: Index, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = await run_retrieval(index)
    # CI's results stay out of the repository (evals/results/ is what `switchboard eval` writes).
    out = tmp_path_factory.mktemp("results") / "retrieval.json"
    out.write_text(json.dumps(result, indent=2))
    return result


class DegradedRetriever:
    """The real retriever, with its three best passages moved to the end of the list."""

    def __init__(self, index: Index) -> None:
        self._retriever = index.retriever

    async def search(self, query: str, where: SearchFilter, k: int | None = None) -> Retrieved:
        found = await self._retriever.search(query, where, k)
        return replace(found, sources=found.sources[3:] + found.sources[:3])


async def test_retrieval_is_not_below_the_baseline(retrieval: dict[str, Any]) -> None:
    assert retrieval["questions"] >= 50
    assert check({"retrieval": retrieval}, load_baseline()) == [], retrieval["metrics"]


async def test_a_degraded_retriever_fails_the_gate(index: Index) -> None:
    degraded = await run_retrieval(index, DegradedRetriever(index))
    failures = check({"retrieval": degraded}, load_baseline())
    assert any(f.startswith("retrieval: recall@1") for f in failures), failures
    assert any(f.startswith("retrieval: mrr") for f in failures), failures


def test_the_gate_tolerates_noise_within_the_tolerance() -> None:
    baseline = {"tolerance": 0.02, "suites": {"retrieval": {"mrr": 0.8}}}
    assert check({"retrieval": {"metrics": {"mrr": 0.785}}}, baseline) == []
    assert check({"retrieval": {"metrics": {"mrr": 0.77}}}, baseline) != []
    assert check({"retrieval": {"metrics": {}}}, baseline) == ["retrieval: mrr is missing"]


async def test_routing_plumbing_is_not_below_the_baseline(backend: ScriptedBackend) -> None:
    entry = backend_entry("scripted", backend)
    scripted = Backend("scripted", [BackendConfig(**entry)], backend)
    scripted.default("judge", '{"score": 5}')
    with running_service(make_settings(entry)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            result = await run_routing(client, scripted)
    assert result["questions"] >= 100
    assert {label: sum(row.values()) for label, row in result["confusion"].items()} == {
        "rag": 55,
        "direct": 45,
        "crew": 35,
    }
    assert check({"routing": result}, load_baseline()) == [], result["metrics"]
    assert all(result["latency"][route]["turns"] > 0 for route in ("rag", "direct", "crew"))


class DatasetSink(LangfuseSink):
    """The loopback Langfuse receiver, also answering the dataset endpoints as a server does."""

    def __post_init__(self) -> None:
        self.datasets: list[dict[str, Any]] = []
        self.items: list[dict[str, Any]] = []
        super().__post_init__()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        base = super()._handler()
        sink = self

        class Handler(base):  # type: ignore[valid-type,misc]
            def do_POST(self) -> None:
                if self.path not in ("/api/public/v2/datasets", "/api/public/dataset-items"):
                    super().do_POST()
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                stamp = {"createdAt": "2025-01-01T00:00:00Z", "updatedAt": "2025-01-01T00:00:00Z"}
                if self.path.endswith("datasets"):
                    sink.datasets.append(body)
                    answer = {"id": "ds-1", "projectId": "p", "metadata": None, **body, **stamp}
                else:
                    sink.items.append(body)
                    answer = {
                        "datasetId": "ds-1",
                        "metadata": None,
                        "expectedOutput": None,
                        "mediaReferences": [],
                        **{k: v for k, v in body.items() if v is not None},
                        "status": "ACTIVE",
                        **stamp,
                    }
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def test_an_evaluation_is_recorded_in_langfuse_as_a_dataset_run(tmp_path: Path) -> None:
    sink = DatasetSink()
    try:
        settings = TracingSettings(
            public_key="pk-eval-gate",
            secret_key=SecretStr("sk-eval-gate"),
            base_url=sink.url,
        )
        rows = [
            {"id": "r1", "rank": 1, "relevant": ["c1"]},
            {"id": "r2", "rank": None, "relevant": ["c2"]},
        ]
        result = {
            "dataset": {"file": "evals/kestrel/datasets/retrieval.jsonl", "version": "v1"},
            "metrics": {"recall@1": 0.5, "mrr": 0.5},
            "rows": rows,
        }
        assert record(settings, "run-1", {"retrieval": result}) == {"retrieval": "run-1"}
        assert [d["name"] for d in sink.datasets] == ["switchboard-retrieval"]
        assert [i["id"] for i in sink.items] == [
            "switchboard-retrieval-r1",
            "switchboard-retrieval-r2",
        ]
        sink.wait_for(
            lambda: {s["name"] for s in sink.scores} >= {"hit@1", "reciprocal_rank", "mrr"}
        )
        by_name = {(s["name"], s["value"]) for s in sink.scores}
        assert ("hit@1", 1.0) in by_name and ("hit@1", 0.0) in by_name
        assert ("recall@1", 0.5) in by_name
        sink.wait_for(lambda: any(s.name == "experiment-item-run" for s in sink.spans))
    finally:
        sink.close()
