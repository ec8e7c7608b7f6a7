"""Embedding backends: a local all-MiniLM-L6-v2, or the `embeddings` role of the LLM backends."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from switchboard.llm import LLMPool


class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed dimension."""

    @property
    def dimension(self) -> int: ...

    @property
    def model_id(self) -> str: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class BackendEmbedder:
    """`/v1/embeddings` of the configured backends, with their retries and failover. The
    dimension is learnt from the first answer (`probe`)."""

    def __init__(self, llm: LLMPool, batch_size: int) -> None:
        self._llm = llm
        self._batch_size = batch_size
        self._dimension = 0

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def model_id(self) -> str:
        return "backend"

    async def probe(self) -> int:
        """Embed one text to learn the dimension; raises `BackendError` if none can."""
        self._dimension = len((await self._llm.embed(["dimension probe"]))[0])
        return self._dimension

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors += await self._llm.embed(texts[start : start + self._batch_size])
        return vectors


class ThreadedEmbedder:
    """Runs a CPU-bound, blocking embedder in a worker thread, one batch at a time, so that the
    event loop keeps streaming while documents are embedded."""

    def __init__(self, model: BlockingEmbedder, batch_size: int) -> None:
        self._model = model
        self._batch_size = batch_size
        self._lock = asyncio.Lock()

    @property
    def dimension(self) -> int:
        return self._model.dimension

    @property
    def model_id(self) -> str:
        return self._model.model_id

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        async with self._lock:
            return await asyncio.to_thread(self._model.embed, texts, self._batch_size)


class BlockingEmbedder(Protocol):
    dimension: int
    model_id: str

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> list[list[float]]: ...
