"""The service's router graph, served by `langgraph dev` (the benchmark's peer server).

`langgraph dev` cannot pass the router's `RouterContext` (it holds the LLM pool) from a request,
so this module exports a one-node wrapper graph: its input is the router's (`messages`), its
node runs `graphs.router.build_router_graph()` with a context built once per process the way
`api.executor.build_context` builds it, with the route pinned to `direct`, the quality check
off, and no retriever, memory or crew. The one backend is `PEER_BACKEND_URL`, serving every role
with a model named after the role.

The router's `custom` events (its `Event`s: route, token, ...) are re-emitted by the wrapper
node, so `stream_mode="custom"` on the peer yields them (as `{"kind": ..., "data": ...}`).
The thread's conversation is the wrapper's `messages` (the answer is appended, as the router
does), checkpointed by `langgraph dev`; the router itself runs without checkpoints.
"""

from __future__ import annotations

import os
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graphs.router import RouterContext, RouterInput, RouterOutput, build_router_graph
from switchboard.llm import LLMPool
from switchboard.settings import Role, load_settings


class PeerState(RouterInput, RouterOutput):
    """The router's input (the thread's messages) and its output."""


_ROUTER = build_router_graph().copy(update={"checkpointer": False})
_context: RouterContext | None = None


def router_context() -> RouterContext:
    """The context of every run: built on first use (in the server's event loop), then kept."""
    global _context
    if _context is None:
        url = os.environ.get("PEER_BACKEND_URL")
        if not url:
            raise RuntimeError("PEER_BACKEND_URL is not set (the OpenAI-compatible backend)")
        backend = {"name": "peer", "base_url": url, "models": {r.value: r.value for r in Role}}
        settings = load_settings(llm={"backends": [backend]}, local={"mode": "off"})
        _context = RouterContext(
            llm=LLMPool(settings.llm, settings.llm.backends),
            router=settings.router,
            quality=settings.quality.model_copy(update={"enabled": False}),
            max_tokens=settings.router.max_tokens,
            route="direct",
            context_tokens=settings.retrieval.context_tokens,
            memory_settings=settings.memory,
        )
    return _context


async def run_router(state: PeerState) -> dict[str, Any]:
    """One turn of the router graph over the thread's messages; its events re-emitted."""
    write = get_stream_writer()
    output: dict[str, Any] = {}
    async for mode, chunk in _ROUTER.astream(
        {"messages": state["messages"]},
        context=router_context(),
        stream_mode=["custom", "values"],
    ):
        if mode == "custom":
            write(chunk)
        elif isinstance(chunk, dict):
            output = chunk
    return {**output, "messages": [{"role": "assistant", "content": output.get("answer", "")}]}


def build_peer_graph() -> CompiledStateGraph[PeerState, None, RouterInput, RouterOutput]:
    graph = StateGraph(PeerState, input_schema=RouterInput, output_schema=RouterOutput)
    graph.add_node("router", run_router)
    graph.add_edge(START, "router")
    return graph.compile(name="router")


def _patch_idle_poll() -> None:
    """With PEER_IDLE_POLL_MS set: the in-memory queue, idle, waits that long for a run instead
    of 0.5 s (and takes runs created while it waited), as ../shared/PEERS.md's "patched" row
    measures, so that the comparison also shows the server's own overhead."""
    poll_ms = os.environ.get("PEER_IDLE_POLL_MS")
    if not poll_ms:
        return
    import asyncio
    from collections.abc import AsyncIterator

    from langgraph_runtime_inmem import ops  # type: ignore[import-not-found]  # .venv-peer only

    original = ops.Runs.next

    async def next_run(wait: bool, limit: int = 1) -> AsyncIterator[Any]:
        if wait:
            await asyncio.sleep(int(poll_ms) / 1000)
        async for item in original(False, limit):
            yield item

    ops.Runs.next = staticmethod(next_run)


_patch_idle_poll()
graph = build_peer_graph()
