"""Qdrant failing at query time: the rag route answers with a degraded notice, never a crash."""

from __future__ import annotations

from pathlib import Path

from graphs import RouterContext, build_router_graph
from memory.retrieval import Retriever
from memory.store import QdrantStore
from switchboard.embeddings import BackendEmbedder
from switchboard.llm import LLMPool
from switchboard.runtime import new_run, run_events
from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings


async def test_a_closed_store_degrades_the_rag_route(
    tmp_path: Path, backend: ScriptedBackend
) -> None:
    settings = make_settings(backend_entry("primary", backend))
    llm = LLMPool(settings.llm, settings.llm.backends)
    embedder = BackendEmbedder(llm, batch_size=8)
    store = QdrantStore(collection="c", url=None, api_key=None, path=tmp_path / "q")
    await store.ensure_schema(await embedder.probe())
    await store.close()  # the store goes away after start-up
    backend.set_default(Reply(text="I could not search your documents."), model="generator")
    context = RouterContext(
        llm=llm,
        router=settings.router,
        quality=settings.quality.model_copy(update={"enabled": False}),
        max_tokens=64,
        route="rag",
        retriever=Retriever(store, embedder, settings.retrieval),
    )
    events = [
        e
        async for e in run_events(
            build_router_graph(),
            new_run("switchboard", None),
            {"messages": [{"role": "user", "content": "What does the contract say?"}]},
            context,
        )
    ]
    kinds = [e.kind.value for e in events]
    assert kinds[:3] == ["metadata", "route", "sources"]
    sources = events[2].data
    assert sources["sources"] == [] and "Qdrant failed" in sources["degraded"]
    assert kinds[-1] == "end"
    assert events[-1].data["output"]["answer"] == "I could not search your documents."
    prompt = next(r for r in reversed(backend.requests) if r.get("model") == "generator")[
        "messages"
    ]
    assert "could not be searched" in prompt[0]["content"]
    await llm.aclose()
