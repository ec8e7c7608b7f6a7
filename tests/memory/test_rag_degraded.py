"""Qdrant failing at query time: the rag route answers with a degraded notice, never a crash."""

from __future__ import annotations

from graphs import RouterContext, build_router_graph
from memory.retrieval import Retriever
from switchboard.runtime import new_run, run_events
from tests.backends import Reply, ScriptedBackend
from tests.memory.conftest import Parts


async def test_a_closed_store_degrades_the_rag_route(
    parts: Parts, backend: ScriptedBackend
) -> None:
    settings, llm = parts.settings, parts.llm
    await parts.store.close()  # the store goes away after start-up
    backend.set_default(Reply(text="I could not search your documents."), model="generator")
    context = RouterContext(
        llm=llm,
        router=settings.router,
        quality=settings.quality.model_copy(update={"enabled": False}),
        max_tokens=64,
        route="rag",
        retriever=Retriever(parts.store, parts.embedder, settings.retrieval),
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
