"""Everything the routes use, built once in the app's lifespan and closed when it ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from langgraph.checkpoint.redis.aio import AsyncRedisSaver
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redisvl.exceptions import RedisVLError

from graphs import WorkflowSpec, build_registry
from memory.ingest import Ingestor, Prepared, VectorStage
from memory.redis_server import EmbeddedRedis, RedisUnavailable
from memory.retrieval import Retriever
from memory.store import QdrantStore
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
class Services:
    settings: Settings
    llm: LLMPool
    workflows: dict[str, WorkflowSpec]
    local: LocalLlamaServer | None
    retrieval: Retrieval | None
    retrieval_error: str | None  # why retrieval is off, for /readyz
    redis: Redis


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
        redis, checkpointer = await _open_memory(settings, stack)
        llm = LLMPool(settings.llm, backends)
        stack.push_async_callback(llm.aclose)
        retrieval: Retrieval | None = None
        retrieval_error: str | None = None
        try:
            retrieval = await _open_retrieval(settings, llm)
        except SwitchboardError as exc:
            retrieval_error = exc.message
            log.error("retrieval is off: %s", exc.message)
        else:
            stack.push_async_callback(retrieval.close)
        yield Services(
            settings=settings,
            llm=llm,
            workflows=build_registry(checkpointer),
            local=local,
            retrieval=retrieval,
            retrieval_error=retrieval_error,
            redis=redis,
        )


async def _open_memory(settings: Settings, stack: AsyncExitStack) -> tuple[Redis, AsyncRedisSaver]:
    """Redis (the configured server, or an embedded one) and the checkpointer on it. Memory is
    required: start-up fails with a clear error when Redis cannot be reached."""
    config = settings.redis
    url = config.url
    if url is None:
        embedded = EmbeddedRedis(settings.server.data_dir / "redis", config.port)
        stack.push_async_callback(embedded.stop)
        await embedded.start()
        url = embedded.url
    redis = Redis.from_url(url, socket_connect_timeout=2)
    stack.push_async_callback(redis.aclose)
    ttl = (
        {"default_ttl": config.thread_ttl_minutes, "refresh_on_read": True}
        if config.thread_ttl_minutes
        else None
    )
    checkpointer = AsyncRedisSaver(redis_client=redis, ttl=ttl)
    try:
        await checkpointer.asetup()
    except (RedisError, RedisVLError, OSError) as exc:
        raise RedisUnavailable(f"Redis at {url} is unavailable: {exc}") from None
    return redis, checkpointer


async def _open_retrieval(settings: Settings, llm: LLMPool) -> Retrieval:
    embedder = await _open_embedder(settings, llm)
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
    stages = [VectorStage(store, embedder, settings.embeddings.batch_size)]
    return Retrieval(
        store=store,
        embedder=embedder,
        ingestor=Ingestor(store, config, stages),
        retriever=Retriever(store, embedder, config),
    )


async def _open_embedder(settings: Settings, llm: LLMPool) -> Embedder:
    if settings.embeddings.mode == "backend":
        backend = BackendEmbedder(llm, settings.embeddings.batch_size)
        await backend.probe()
        return backend
    from switchboard.local_embedder import LocalEmbedder  # onnxruntime: import only when used

    model = await asyncio.to_thread(LocalEmbedder, settings.embeddings.threads)
    return ThreadedEmbedder(model, settings.embeddings.batch_size)
