"""Memory and knowledge benchmarks: the Redis checkpointer's cost per turn, the knowledge
graph's write rate, and neighbourhood look-ups at 10k entities — against the real servers (the
embedded valkey + RedisJSON + RediSearch, Neo4j 5.26's harness).

Checkpointer overhead: the router graph (direct route, no judge) run turn after turn on one
thread, with the scripted backend answering at once, once without a checkpointer and once with
LangGraph's Redis checkpointer plus the thread-owner record each turn claims; the difference of
the mean turn times is the overhead.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from graphs.router import RouterContext, build_router_graph
from memory.graph import ChunkGraph, Entity, Relation, entity_key
from memory.neo4j_graph import Neo4jGraph
from memory.neo4j_server import EmbeddedNeo4j
from memory.redis_server import EmbeddedRedis
from memory.threads import Checkpointer, ThreadRegistry
from switchboard.llm import LLMPool
from switchboard.runtime import RunInfo, run_events
from switchboard.settings import BackendConfig, LLMSettings, QualitySettings, RouterSettings
from tests.backends import Reply, ScriptedBackend


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _turns(
    graph: Any, llm: LLMPool, registry: ThreadRegistry | None, turns: int, thread: str
) -> list[float]:
    context = RouterContext(
        llm=llm,
        router=RouterSettings(),
        quality=QualitySettings(enabled=False),
        max_tokens=16,
        route="direct",
    )
    times = []
    for turn in range(turns):
        started = time.perf_counter()
        if registry is not None:
            await registry.claim(thread, "bench", None, "switchboard")
        info = RunInfo(f"run-{turn}", thread, "switchboard")
        message = {"role": "user", "content": f"message {turn}"}
        async for _ in run_events(graph, info, {"messages": [message]}, context, "exit"):
            pass
        times.append((time.perf_counter() - started) * 1000)
    return times


async def checkpointer_overhead(turns: int) -> dict[str, Any]:
    with ScriptedBackend() as backend:
        backend.set_default(Reply(text="ok", tokens=["ok"]))
        config = BackendConfig.model_validate(
            {"name": "bench", "base_url": backend.url, "model": "scripted"}
        )
        llm = LLMPool(LLMSettings(backends=[config]), [config])
        redis = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="bench-redis-")))
        await redis.start()
        from redis.asyncio import Redis

        client = Redis.from_url(redis.url)
        try:
            saver = Checkpointer(redis_client=client, ttl={"default_ttl": 10080})
            await saver.asetup()
            registry = ThreadRegistry(client, 10080)
            plain = build_router_graph(None)
            kept = build_router_graph(saver)
            await _turns(plain, llm, None, 20, "warm-a")  # warm both paths
            await _turns(kept, llm, registry, 20, "warm-b")
            without = await _turns(plain, llm, None, turns, "plain")
            with_redis = await _turns(kept, llm, registry, turns, "kept")
            short_without: list[float] = []
            short_with: list[float] = []
            for thread in range(30):  # conversations of 10 turns, the common case
                short_without += await _turns(plain, llm, None, 10, f"plain-{thread}")
                short_with += await _turns(kept, llm, registry, 10, f"kept-{thread}")
        finally:
            await llm.aclose()
            await client.aclose()
            await redis.stop()
    mean_without, mean_with = statistics.mean(without), statistics.mean(with_redis)
    return {
        "turns": turns,
        "turn_ms_without_p50": round(statistics.median(without), 2),
        "turn_ms_with_p50": round(statistics.median(with_redis), 2),
        "turn_ms_without_mean": round(mean_without, 2),
        "turn_ms_with_mean": round(mean_with, 2),
        "overhead_ms_mean": round(mean_with - mean_without, 2),
        "overhead_ms_p50": round(statistics.median(with_redis) - statistics.median(without), 2),
        "short_threads_overhead_ms_mean": round(
            statistics.mean(short_with) - statistics.mean(short_without), 2
        ),
        "short_threads_overhead_ms_p50": round(
            statistics.median(short_with) - statistics.median(short_without), 2
        ),
        "note": "overhead_*: one thread growing to `turns` turns; short_threads_*: 30 threads "
        "of 10 turns; both include the thread-owner claim",
    }


def _synthetic_graph(entities: int, seed: int = 7) -> list[list[ChunkGraph]]:
    """Documents of 10 chunks, each chunk naming 5 entities and 4 relations among them, over a
    vocabulary of `entities` names: about `entities` distinct entities, each in several chunks."""
    rng = random.Random(seed)
    names = [f"entity {i}" for i in range(entities)]
    documents = []
    chunk_count = entities // 5 * 2
    for doc in range(chunk_count // 10):
        chunks = []
        for c in range(10):
            index = doc * 10 + c
            picked = [names[(index * 5 + k) % entities] for k in range(3)]
            picked += rng.sample(names, 2)
            graph = ChunkGraph(f"chunk-{doc}-{c}", [Entity(n, "concept") for n in picked])
            for _ in range(4):
                a, b = rng.sample(picked, 2)
                graph.relations.append(Relation(a, rng.choice(["USES", "PART_OF", "CALLS"]), b))
            chunks.append(graph)
        documents.append(chunks)
    return documents


async def graph_figures(entities: int, lookups: int) -> dict[str, Any]:
    server = EmbeddedNeo4j(Path(tempfile.mkdtemp(prefix="bench-neo4j-")), heap_mb=1024)
    await server.start()
    graph = Neo4jGraph(server.url, query_timeout=60)
    try:
        await graph.ensure_schema()
        documents = _synthetic_graph(entities)
        started = time.perf_counter()
        for number, chunks in enumerate(documents):
            await graph.write("bench", f"doc-{number}", f"Document {number}", chunks)
        write_s = time.perf_counter() - started
        counts = await graph.counts("bench")
        rng = random.Random(11)
        keys = [entity_key(f"entity {rng.randrange(entities)}", "concept") for _ in range(lookups)]
        for key in keys[:20]:  # warm the page cache and query plans
            await graph.neighbourhood("bench", key, 2, 40)
        two_hop, one_hop, search = [], [], []
        for key in keys:
            started = time.perf_counter()
            await graph.neighbourhood("bench", key, 2, 40)
            two_hop.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await graph.neighbourhood("bench", key, 1, 40)
            one_hop.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await graph.search_entities("bench", f"what uses {key.split('|')[0]}?", 16)
            search.append((time.perf_counter() - started) * 1000)
    finally:
        await graph.close()
        await server.stop()
    chunk_total = sum(len(d) for d in documents)
    mentions = sum(len(c.entities) for d in documents for c in d)
    return {
        "entities": counts["entities"],
        "relations": counts["relations"],
        "chunks": counts["chunks"],
        "ingest_s": round(write_s, 2),
        "ingest_chunks_per_s": round(chunk_total / write_s, 1),
        "ingest_mentions_per_s": round(mentions / write_s, 1),
        "lookups": lookups,
        "two_hop_p50_ms": round(statistics.median(two_hop), 2),
        "two_hop_p99_ms": round(_percentile(two_hop, 0.99), 2),
        "one_hop_p50_ms": round(statistics.median(one_hop), 2),
        "one_hop_p99_ms": round(_percentile(one_hop, 0.99), 2),
        "entity_search_p50_ms": round(statistics.median(search), 2),
        "entity_search_p99_ms": round(_percentile(search, 0.99), 2),
        "note": "graph writes only (UNWIND MERGE per document of 10 chunks); extraction is a "
        "model call per chunk and is not included",
    }


def run(turns: int, entities: int, lookups: int) -> dict[str, Any]:
    async def both() -> dict[str, Any]:
        return {
            "checkpointer": await checkpointer_overhead(turns),
            "graph": await graph_figures(entities, lookups),
        }

    figures = asyncio.run(both())
    print(figures)
    return figures
