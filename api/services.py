"""Everything the routes use, built once in the app's lifespan and closed when it ends."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from graphs import WorkflowSpec, build_registry
from switchboard.llm import LLMPool
from switchboard.llm.local import LocalLlamaServer
from switchboard.settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Services:
    settings: Settings
    llm: LLMPool
    workflows: dict[str, WorkflowSpec]
    local: LocalLlamaServer | None


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Start what the service depends on (the bundled model server when no backend is
    configured) and build the shared clients; stop and close them on exit."""
    local: LocalLlamaServer | None = None
    backends = list(settings.llm.backends)
    if settings.wants_local_backend:
        local = LocalLlamaServer(settings.local, settings.server.data_dir / "logs")
        await local.start()
        backends.append(local.backend)
    llm = LLMPool(settings.llm, backends)
    try:
        yield Services(settings=settings, llm=llm, workflows=build_registry(), local=local)
    finally:
        await llm.aclose()
        if local is not None:
            await local.stop()
