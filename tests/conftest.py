"""Shared fixtures: the scripted backend and the service built on it."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import openai
import pytest

from memory.neo4j_server import EmbeddedNeo4j
from memory.redis_server import EmbeddedRedis
from switchboard.settings import Settings
from tests.backends import ScriptedBackend
from tests.service_runner import running_service


@pytest.fixture(scope="session")
def scripted_session() -> Iterator[ScriptedBackend]:
    with ScriptedBackend() as backend:
        yield backend


@pytest.fixture
def backend(scripted_session: ScriptedBackend) -> ScriptedBackend:
    """The primary scripted backend, with a clean script for each test."""
    scripted_session.reset()
    return scripted_session


@pytest.fixture(scope="session")
def scripted_spare() -> Iterator[ScriptedBackend]:
    with ScriptedBackend() as backend:
        yield backend


@pytest.fixture
def spare(scripted_spare: ScriptedBackend) -> ScriptedBackend:
    """A second scripted backend, for failover."""
    scripted_spare.reset()
    return scripted_spare


def backend_entry(name: str, backend: ScriptedBackend) -> dict[str, Any]:
    """A backend configuration that serves each role with a model named after the role, so that
    tests can script the router, generator and judge apart."""
    return {
        "name": name,
        "base_url": backend.url,
        "models": {
            r: r for r in ("router", "generator", "crew", "judge", "embeddings", "extractor")
        },
    }


def make_settings(*backends: dict[str, Any], **groups: dict[str, Any]) -> Settings:
    """Settings for a test: the given backends, fast timeouts, no bundled model, embeddings from
    the backends (the scripted backend's are deterministic), a fresh data folder."""
    llm = {
        "backends": list(backends),
        "connect_timeout": 1.0,
        "first_token_timeout": 5.0,
        "idle_timeout": 5.0,
        "request_timeout": 5.0,
        "retry_backoff": 0.01,
        **groups.pop("llm", {}),
    }
    groups.setdefault("server", {})
    groups["server"].setdefault("data_dir", tempfile.mkdtemp(prefix="switchboard-test-"))
    groups.setdefault("embeddings", {"mode": "backend"})
    # The knowledge graph needs a Neo4j: tests that use it pass `graph={"url": neo4j}`.
    groups.setdefault("graph", {"enabled": False})
    # Authentication is tested by its own suite (tests/service/test_auth.py); elsewhere the
    # tenant is named in `X-Switchboard-Tenant`, as auth mode `off` allows.
    groups.setdefault("auth", {"mode": "off"})
    return Settings(llm=llm, local={"mode": "off"}, **groups)  # type: ignore[arg-type]


@pytest.fixture
def service(backend: ScriptedBackend) -> Iterator[str]:
    """The service on the primary scripted backend, with default settings."""
    with running_service(make_settings(backend_entry("primary", backend))) as url:
        yield url


@pytest.fixture
def openai_client() -> Iterator[Callable[..., openai.OpenAI]]:
    """Makes the official sync client for a service URL (`make(url, **options)`) and closes
    each at the end of the test: a connection left to the garbage collector is a
    ResourceWarning, which fails whichever test happens to be running when it is collected."""
    made: list[openai.OpenAI] = []

    def make(url: str, **options: Any) -> openai.OpenAI:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="session")
async def redis_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """One real Redis (the embedded valkey with RedisJSON and RediSearch) for tests that look
    inside it; tests keep apart by tenant, user and thread names."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    await server.start()
    yield server.url
    await server.stop()


@pytest.fixture(scope="session")
async def neo4j_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """One real Neo4j (Community 5.26, the in-process harness over Bolt) for the session."""
    server = EmbeddedNeo4j(tmp_path_factory.mktemp("neo4j"))
    await server.start()
    yield server.url
    await server.stop()
