"""Everything the routes use, built once in the app's lifespan and closed when it ends."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.asyncio import BlockingConnectionPool, Redis

from agents.crew import CrewRunner
from api.auth import Authenticator, say_if_keyless
from graphs import WorkflowSpec, build_registry
from memory.api_keys import ApiKeyStore
from memory.graph import KnowledgeGraph
from memory.graph_extract import GraphStage
from memory.ingest import Ingestor, IngestStage, Prepared, VectorStage
from memory.long_term import FixedAsyncRedisStore, LongTermMemory
from memory.redis_server import EmbeddedRedis
from memory.retrieval import Retriever
from memory.store import StoreUnavailable
from memory.threads import REDIS_ERRORS, Checkpointer, ThreadRegistry, unavailable
from switchboard import tracing
from switchboard.background import BackgroundJobs
from switchboard.embeddings import BackendEmbedder, Embedder, ThreadedEmbedder
from switchboard.errors import SwitchboardError
from switchboard.event_bus import EventHub
from switchboard.llm import LLMPool
from switchboard.llm.local import LocalLlamaServer
from switchboard.opening import Opening
from switchboard.ratelimit import RateLimiter
from switchboard.runs import OwnedBy, RunRecord, RunStore
from switchboard.settings import Settings
from switchboard.worker import Worker

if TYPE_CHECKING:
    from memory.qdrant import QdrantStore  # imported in the background: `_open_retrieval`

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

    def attach_graph(self, graph: KnowledgeGraph, stage: GraphStage) -> None:
        """The knowledge graph opened (after the store): ingestion writes to it and retrieval
        reads from it from now on."""
        self.ingestor.add_stage(stage)
        self.retriever.graph = graph

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
    # Both open in the background after start-up (`Opening`): /readyz shows them `starting`.
    retrieval: Opening[Retrieval]
    graph: Opening[KnowledgeGraph]
    memory: Memory
    runs: RunStore  # runs, their events and the queue workers read
    events: EventHub  # follows the runs' event Streams that this process's clients read
    background: BackgroundJobs  # what follows turns (remembering), waited for at shutdown
    crew: CrewRunner | None  # None: the crew route and workflow are off
    api_keys: ApiKeyStore
    auth: Authenticator
    limiter: RateLimiter  # per caller, in Redis
    worker: Worker | None = None  # the worker inside this process, while it runs
    draining_since: float | None = None  # monotonic time of SIGTERM: finishing, taking nothing

    async def submit(
        self, record: RunRecord, idempotency_key: str | None = None, owner: OwnedBy | None = None
    ) -> RunRecord:
        """Queue a run: through this process's worker when it has one (which may start it at
        once), else for whichever worker reads the queue first. Returns the run (with an
        idempotency key already used, the run that key created). `owner`: the thread's claim,
        sent in the same round trip; the run is made only on the tenant's own thread."""
        if self.worker is not None:
            return await self.worker.submit(record, idempotency_key, owner)
        created, _ = await self.runs.create(record, idempotency_key, owner=owner)
        return created

    @property
    def redis(self) -> Redis:
        return self.memory.redis

    async def documents(self) -> Retrieval | None:
        """The document store for writing and deleting: waits until the knowledge graph has
        opened too (or could not), so that no document lands in one and not the other."""
        await self.graph.wait()
        return await self.retrieval.wait()


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Start what chat depends on (the bundled model server when no backend is configured, the
    embedded Redis when none is configured) and build the shared clients, then open the
    document store and the knowledge graph in the background; stop and close all of them on
    exit, or as far as start-up got when a step fails. A store or embedder that cannot start
    leaves the service up with the rag route off and `/readyz` saying why."""
    async with AsyncExitStack() as stack:
        # First in, so last out: every other part may still trace while it stops.
        tracing.install(tracing.Tracing.start(settings.tracing))
        stack.push_async_callback(_stop_tracing, settings.tracing.shutdown_wait_s)
        local: LocalLlamaServer | None = None
        backends = list(settings.llm.backends)
        if settings.wants_local_backend:
            local = LocalLlamaServer(settings.local, settings.server.data_dir / "logs")
            stack.push_async_callback(local.stop)
            await local.start()
            backends.append(local.backend)
        llm = LLMPool(settings.llm, backends)
        stack.push_async_callback(llm.aclose)
        # Loading the embedder (onnxruntime) and starting Redis overlap: both mostly wait.
        (embedder, embedder_error), redis_url = await asyncio.gather(
            _open_embedder(settings, llm), _redis_url(settings, stack)
        )
        memory = await _open_memory(settings, stack, redis_url, embedder)
        retrieval: Opening[Retrieval] = Opening("document store")
        graph: Opening[KnowledgeGraph] = Opening("knowledge graph")
        # Their own exit stacks, entered before the openings' tasks are cancelled at shutdown
        # (below), so they close after those tasks have stopped.
        retrieval_stack = await stack.enter_async_context(AsyncExitStack())
        graph_stack = await stack.enter_async_context(AsyncExitStack())
        openings: list[asyncio.Task[None]] = []
        if embedder is None:
            retrieval.fail(f"embedder: {embedder_error}")
        else:
            opening = retrieval.settle(
                _open_retrieval_retrying(settings, embedder, retrieval_stack, llm, retrieval, graph)
            )
            openings.append(asyncio.create_task(opening, name="open retrieval"))
        if not settings.graph.enabled:
            graph.fail("disabled by configuration")
        else:
            opening = graph.settle(_open_graph(settings, llm, graph_stack, retrieval))
            openings.append(asyncio.create_task(opening, name="open graph"))
        stack.push_async_callback(_cancel, openings)
        crew = None
        if settings.crew.enabled:
            crew = CrewRunner(llm, settings.crew, settings.server.data_dir)
            # CrewAI takes seconds to import: in a thread once the service is up, not before,
            # and after the document store has opened (both imports hold the GIL).
            warming = asyncio.create_task(_warm(crew, retrieval), name="import crewai")
            warming.add_done_callback(_log_warm_failure)
            stack.callback(warming.cancel)  # holds a reference until shutdown
        runs = RunStore(memory.redis, settings.runtime)
        api_keys = ApiKeyStore(memory.redis)
        await say_if_keyless(settings.auth, api_keys)
        events = EventHub(memory.redis, runs)
        stack.push_async_callback(events.close)
        background = BackgroundJobs()
        # Pushed last, so run first at shutdown: the jobs still use the model and Redis.
        stack.push_async_callback(background.drain, _BACKGROUND_DRAIN_S)
        yield Services(
            settings=settings,
            llm=llm,
            workflows=build_registry(memory.checkpointer, crew=crew is not None),
            local=local,
            retrieval=retrieval,
            graph=graph,
            memory=memory,
            runs=runs,
            events=events,
            background=background,
            crew=crew,
            api_keys=api_keys,
            auth=Authenticator(settings.auth, api_keys),
            limiter=RateLimiter(memory.redis, settings.rate_limits),
        )


async def _stop_tracing(wait_s: float) -> None:
    stopping = tracing.current()
    tracing.install(tracing.Tracing())
    await stopping.close(wait_s)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _warm(crew: CrewRunner, retrieval: Opening[Retrieval]) -> None:
    await retrieval.wait()
    await crew.warm()


def _log_warm_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("CrewAI could not be imported: %s", task.exception())


async def _redis_url(settings: Settings, stack: AsyncExitStack) -> str:
    """The configured Redis, or an embedded one started now (its failure fails start-up)."""
    if settings.redis.url is not None:
        return settings.redis.url
    embedded = EmbeddedRedis(settings.server.data_dir / "redis", settings.redis.port)
    stack.push_async_callback(embedded.stop)
    await embedded.start()
    return embedded.url


async def _open_memory(
    settings: Settings, stack: AsyncExitStack, url: str, embedder: Embedder | None
) -> Memory:
    """The checkpointer and the long-term store on Redis. A configured Redis that cannot be
    reached leaves the service up, not ready, until it answers."""
    config = settings.redis
    # Bounded socket waits: a Redis that stops answering must fail a turn, not hang it. A
    # bounded pool that makes commands wait for a free connection (rather than fail, as
    # redis-py's default pool of 100 does) when many runs are busy at once.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=config.max_connections,
        timeout=5,
        socket_connect_timeout=2,
        socket_timeout=5,
    )
    redis = Redis.from_pool(pool)  # owns the pool: closing the client closes its connections
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
        threads=ThreadRegistry(redis, thread_ttl, checkpointer.state_key),
        long_term=long_term,
        store=store,
    )
    try:
        await memory.ensure_ready()
    except SwitchboardError as exc:
        log.error("%s; chat is refused until it answers", exc.message)
    return memory


async def _open_graph(
    settings: Settings, llm: LLMPool, stack: AsyncExitStack, retrieval: Opening[Retrieval]
) -> KnowledgeGraph:
    """The knowledge graph: the configured Neo4j, or the embedded harness when Java and Maven
    are here. Once it answers it is attached to the document store (when that opened)."""
    config = settings.graph
    # The driver takes a third of a second to import: not on the event loop.
    neo4j_graph = await asyncio.to_thread(importlib.import_module, "memory.neo4j_graph")
    url = config.url
    if url is None:
        from memory.neo4j_server import EmbeddedNeo4j  # imported with the driver, just above

        embedded = EmbeddedNeo4j(settings.server.data_dir / "neo4j", config.port, config.heap_mb)
        stack.push_async_callback(embedded.stop)
        await embedded.start(config.startup_timeout)
        url = embedded.url
    auth = (
        (config.username, config.password.get_secret_value() if config.password else "")
        if config.username
        else None
    )
    graph: KnowledgeGraph = neo4j_graph.Neo4jGraph(
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
    documents = await retrieval.wait()
    if documents is not None:
        documents.attach_graph(graph, GraphStage(graph, llm, config))
    log.info("knowledge graph is up at %s", url)
    return graph


# How often a document store that is unavailable (its folder held by another process, its
# server down) is tried again, so that the service recovers without a restart.
_REOPEN_S = 1.0


async def _open_retrieval_retrying(
    settings: Settings,
    embedder: Embedder,
    stack: AsyncExitStack,
    llm: LLMPool,
    retrieval: Opening[Retrieval],
    graph: Opening[KnowledgeGraph],
) -> Retrieval:
    """The document store, once it opens. While it is unavailable it is reported off (uploads
    fail at once with 503, not wait) and tried again every `_REOPEN_S`; when it opens after the
    knowledge graph did, the graph is attached here (`_open_graph` found no store to attach
    to). Any other failure (a collection of another dimension) is final."""
    reported: str | None = None
    while True:
        try:
            opened = await _open_retrieval(settings, embedder, stack)
        except StoreUnavailable as exc:
            if exc.message != reported:
                log.error(
                    "document store is off, tried again every %gs: %s", _REOPEN_S, exc.message
                )
                reported = exc.message
            retrieval.fail(exc.message)
        else:
            if graph.current is not None:
                opened.attach_graph(graph.current, GraphStage(graph.current, llm, settings.graph))
            return opened
        await asyncio.sleep(_REOPEN_S)


async def _open_retrieval(
    settings: Settings, embedder: Embedder, stack: AsyncExitStack
) -> Retrieval:
    config = settings.retrieval
    # qdrant-client takes about a second to import: not on the event loop.
    qdrant = await asyncio.to_thread(importlib.import_module, "memory.qdrant")
    store: QdrantStore = qdrant.QdrantStore(
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
    retrieval = Retrieval(
        store=store,
        embedder=embedder,
        ingestor=Ingestor(store, config, stages),
        retriever=Retriever(store, embedder, config, None, settings.graph),
    )
    stack.push_async_callback(retrieval.close)
    log.info("document store is up")
    return retrieval


async def _open_embedder(settings: Settings, llm: LLMPool) -> tuple[Embedder | None, str | None]:
    """The embedder, or (None, why): without one, retrieval is off and memories are recalled
    without vectors."""
    try:
        if settings.embeddings.mode == "backend":
            backend = BackendEmbedder(llm, settings.embeddings.batch_size)
            await backend.probe()
            return backend, None
        from switchboard.local_embedder import LocalEmbedder  # onnxruntime: only when used

        model = await asyncio.to_thread(LocalEmbedder, settings.embeddings.threads)
    except SwitchboardError as exc:
        log.error("retrieval is off and memories are recalled without vectors: %s", exc)
        return None, exc.message
    return ThreadedEmbedder(model, settings.embeddings.batch_size), None
