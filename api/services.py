"""Everything the routes use, built once in the app's lifespan and closed when it ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from agents.crew import CrewRunner
from graphs import WorkflowSpec, build_registry
from memory.graph import KnowledgeGraph, Neo4jGraph
from memory.graph_extract import GraphStage
from memory.ingest import Ingestor, IngestStage, Prepared, VectorStage
from memory.long_term import FixedAsyncRedisStore, LongTermMemory
from memory.neo4j_server import EmbeddedNeo4j
from memory.redis_server import EmbeddedRedis
from memory.retrieval import Retriever
from memory.store import QdrantStore
from memory.threads import REDIS_ERRORS, Checkpointer, ThreadRegistry, unavailable
from switchboard.background import BackgroundJobs
from switchboard.embeddings import BackendEmbedder, Embedder, ThreadedEmbedder
from switchboard.errors import SwitchboardError
from switchboard.llm import LLMPool
from switchboard.llm.local import LocalLlamaServer
from switchboard.settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Retrieval:
    """Documents in and passages out: the store, the embedder and the pipeline over them."""

    store: QdrantStore
    embedder: Embedder
    ingestor: Ingestor
    retriever: Retriever
    background: set[asyncio.Task[object]] = field(default_factory=set)

    async def close(self) -> None:
        """Cancel unfinished background ingestions (their documents stay `processing` and are
        redone when uploaded again), then close the store."""
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.store.close()

    def ingest_in_background(self, prepared: Prepared) -> None:
        """Run the pipeline after the response; the record's status tells the client how far
        it got."""
        task: asyncio.Task[object] = asyncio.create_task(self.ingestor.run(prepared))
        self.background.add(task)
        task.add_done_callback(self.background.discard)


@dataclass(slots=True)
class Memory:
    """Redis: each thread's conversation (the checkpointer), who owns each thread, and users'
    long-term memories. Redis may be down at start-up or later: `ensure_ready` (called by every
    turn) sets up the indexes once Redis answers, so the service recovers without a restart."""

    redis: Redis
    checkpointer: Checkpointer
    threads: ThreadRegistry
    long_term: LongTermMemory | None
    store: FixedAsyncRedisStore | None
    embedded: EmbeddedRedis | None
    ready: bool = False

    async def ensure_ready(self) -> None:
        if self.ready:
            return
        try:
            await self.checkpointer.asetup()
            if self.store is not None:
                await self.store.setup()
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc
        self.ready = True
        log.info("conversation memory (Redis) is ready")


# At shutdown, how long jobs in flight (one bounded extraction call each) may take to finish.
_BACKGROUND_DRAIN_S = 10.0


@dataclass(slots=True)
class Services:
    settings: Settings
    llm: LLMPool
    workflows: dict[str, WorkflowSpec]
    local: LocalLlamaServer | None
    retrieval: Retrieval | None
    retrieval_error: str | None  # why retrieval is off, for /readyz
    memory: Memory
    graph: KnowledgeGraph | None
    graph_error: str | None  # why the knowledge graph is off, for /readyz
    background: BackgroundJobs  # what follows turns (remembering), waited for at shutdown
    crew: CrewRunner | None  # None: the crew route and workflow are off

    @property
    def redis(self) -> Redis:
        return self.memory.redis


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Start what the service depends on (the bundled model server when no backend is
    configured, the embedded Redis when none is configured) and build the shared clients; stop
    and close them on exit, or as far as start-up got when a step fails. A store or embedder
    that cannot start leaves the service up with the rag route off and `/readyz` saying why."""
    async with AsyncExitStack() as stack:
        local: LocalLlamaServer | None = None
        backends = list(settings.llm.backends)
        if settings.wants_local_backend:
            local = LocalLlamaServer(settings.local, settings.server.data_dir / "logs")
            stack.push_async_callback(local.stop)
            await local.start()
            backends.append(local.backend)
        llm = LLMPool(settings.llm, backends)
        stack.push_async_callback(llm.aclose)
        embedder: Embedder | None = None
        retrieval: Retrieval | None = None
        retrieval_error: str | None = None
        try:
            embedder = await _open_embedder(settings, llm)
        except SwitchboardError as exc:
            retrieval_error = f"embedder: {exc.message}"
            log.error("retrieval is off and memories are recalled without vectors: %s", exc)
        memory = await _open_memory(settings, stack, embedder)
        graph, graph_error = await _open_graph(settings, stack)
        if embedder is not None:
            try:
                retrieval = await _open_retrieval(settings, llm, embedder, graph)
            except SwitchboardError as exc:
                retrieval_error = exc.message
                log.error("retrieval is off: %s", exc.message)
            else:
                stack.push_async_callback(retrieval.close)
        crew = None
        if settings.crew.enabled:
            crew = CrewRunner(llm, settings.crew, settings.server.data_dir)
            # CrewAI takes seconds to import: in a thread once the service is up, not before.
            warming = asyncio.create_task(crew.warm(), name="import crewai")
            warming.add_done_callback(_log_warm_failure)
            stack.callback(warming.cancel)  # holds a reference until shutdown
        background = BackgroundJobs()
        # Pushed last, so run first at shutdown: the jobs still use the model and Redis.
        stack.push_async_callback(background.drain, _BACKGROUND_DRAIN_S)
        yield Services(
            settings=settings,
            llm=llm,
            workflows=build_registry(memory.checkpointer, crew=crew is not None),
            local=local,
            retrieval=retrieval,
            retrieval_error=retrieval_error,
            memory=memory,
            graph=graph,
            graph_error=graph_error,
            background=background,
            crew=crew,
        )


def _log_warm_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("CrewAI could not be imported: %s", task.exception())


async def _open_memory(
    settings: Settings, stack: AsyncExitStack, embedder: Embedder | None
) -> Memory:
    """Redis (the configured server, or an embedded one), the checkpointer and the long-term
    store on it. An embedded Redis that fails to start fails start-up; a configured one that
    cannot be reached leaves the service up, not ready, until it answers."""
    config = settings.redis
    url = config.url
    embedded: EmbeddedRedis | None = None
    if url is None:
        embedded = EmbeddedRedis(settings.server.data_dir / "redis", config.port)
        stack.push_async_callback(embedded.stop)
        await embedded.start()
        url = embedded.url
    # Bounded socket waits: a Redis that stops answering must fail a turn, not hang it.
    redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    stack.push_async_callback(redis.aclose)
    thread_ttl = config.thread_ttl_minutes
    checkpointer = Checkpointer(
        redis_client=redis,
        ttl={"default_ttl": thread_ttl, "refresh_on_read": True} if thread_ttl else None,
    )
    store: FixedAsyncRedisStore | None = None
    long_term: LongTermMemory | None = None
    if settings.memory.enabled:
        memory_ttl = settings.memory.ttl_minutes
        index: Any = (
            {"dims": embedder.dimension, "embed": embedder.embed, "fields": ["text"]}
            if embedder is not None
            else None
        )
        store = FixedAsyncRedisStore(
            redis_client=redis,
            index=index,
            ttl={"default_ttl": memory_ttl, "refresh_on_read": True} if memory_ttl else None,
        )
        long_term = LongTermMemory(store, vector_search=embedder is not None)
    memory = Memory(
        redis=redis,
        checkpointer=checkpointer,
        threads=ThreadRegistry(redis, thread_ttl),
        long_term=long_term,
        store=store,
        embedded=embedded,
    )
    try:
        await memory.ensure_ready()
    except SwitchboardError as exc:
        log.error("%s; chat is refused until it answers", exc.message)
    return memory


async def _open_graph(
    settings: Settings, stack: AsyncExitStack
) -> tuple[KnowledgeGraph | None, str | None]:
    """The knowledge graph: the configured Neo4j, or the embedded harness when Java and Maven
    are here; (None, why) when it is off."""
    config = settings.graph
    if not config.enabled:
        return None, "disabled by configuration"
    url = config.url
    if url is None:
        embedded = EmbeddedNeo4j(settings.server.data_dir / "neo4j", config.port, config.heap_mb)
        try:
            await embedded.start(config.startup_timeout)
        except SwitchboardError as exc:
            log.error("knowledge graph is off: %s", exc.message)
            return None, exc.message
        stack.push_async_callback(embedded.stop)
        url = embedded.url
    auth = (
        (config.username, config.password.get_secret_value() if config.password else "")
        if config.username
        else None
    )
    graph = Neo4jGraph(
        url,
        auth=auth,
        database=config.database,
        connect_timeout=config.connect_timeout,
        query_timeout=config.query_timeout,
    )
    stack.push_async_callback(graph.close)
    try:
        await graph.ensure_schema()
    except SwitchboardError as exc:
        # Kept: queries fail (and degrade to vectors) until Neo4j answers.
        log.error("knowledge graph schema not set up: %s", exc.message)
    return graph, None


async def _open_retrieval(
    settings: Settings, llm: LLMPool, embedder: Embedder, graph: KnowledgeGraph | None
) -> Retrieval:
    config = settings.retrieval
    store = QdrantStore(
        collection=config.collection,
        url=config.qdrant_url,
        api_key=config.qdrant_api_key,
        path=settings.server.data_dir / "qdrant",
    )
    try:
        await store.ensure_schema(embedder.dimension)
    except SwitchboardError:
        await store.close()
        raise
    stages: list[IngestStage] = [VectorStage(store, embedder, settings.embeddings.batch_size)]
    if graph is not None:
        stages.append(GraphStage(graph, llm, settings.graph))
    return Retrieval(
        store=store,
        embedder=embedder,
        ingestor=Ingestor(store, config, stages),
        retriever=Retriever(store, embedder, config, graph, settings.graph),
    )


async def _open_embedder(settings: Settings, llm: LLMPool) -> Embedder:
    if settings.embeddings.mode == "backend":
        backend = BackendEmbedder(llm, settings.embeddings.batch_size)
        await backend.probe()
        return backend
    from switchboard.local_embedder import LocalEmbedder  # onnxruntime: import only when used

    model = await asyncio.to_thread(LocalEmbedder, settings.embeddings.threads)
    return ThreadedEmbedder(model, settings.embeddings.batch_size)
