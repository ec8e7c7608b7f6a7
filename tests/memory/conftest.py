"""Retrieval parts wired to the scripted backend's embeddings and a local Qdrant folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from memory.qdrant import QdrantStore
from switchboard.embeddings import BackendEmbedder
from switchboard.llm import LLMPool
from switchboard.settings import Settings
from tests.backends import ScriptedBackend
from tests.conftest import backend_entry, make_settings


@dataclass
class Parts:
    settings: Settings
    llm: LLMPool
    embedder: BackendEmbedder
    store: QdrantStore


@pytest.fixture
async def parts(tmp_path: Path, backend: ScriptedBackend) -> AsyncIterator[Parts]:
    settings = make_settings(backend_entry("primary", backend))
    llm = LLMPool(settings.llm, settings.llm.backends)
    embedder = BackendEmbedder(llm, batch_size=8)
    store = QdrantStore(collection="c", url=None, api_key=None, path=tmp_path / "q")
    await store.ensure_schema(await embedder.probe())
    yield Parts(settings, llm, embedder, store)
    await store.close()
    await llm.aclose()
