"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.deps import ServicesDep
from api.services import Services
from switchboard import metrics
from switchboard.errors import SwitchboardError
from switchboard.llm import Backend, CircuitState
from switchboard.opening import Opening
from switchboard.settings import Role

router = APIRouter(tags=["operations"])

_PROBE_TIMEOUT = 2.0


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def prometheus_metrics(services: ServicesDep) -> Response:
    """Prometheus' text format (`switchboard.metrics`); the queue depth and the circuits are
    read now."""
    with contextlib.suppress(RedisError, OSError):  # Redis down: the last depth read stays
        metrics.QUEUE_DEPTH.set(await services.runs.queue_depth())
    for backend in services.llm.backends:
        for state in CircuitState:
            value = 1 if backend.breaker.state is state else 0
            metrics.CIRCUIT_STATE.labels(backend.name, state.value).set(value)
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        503: {
            "description": "Not ready: the same report, `status` not_ready.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def readyz(services: ServicesDep) -> JSONResponse:
    """Each dependency with its state; 503 unless some backend can generate."""
    backends = services.llm.backends
    states, redis = await asyncio.gather(
        asyncio.gather(*(_probe(b) for b in backends)), _ping(services.redis)
    )
    report = dict(zip((b.name for b in backends), states, strict=True))
    if redis["status"] == "up" and not services.memory.ready:
        try:
            await services.memory.ensure_ready()
        except SwitchboardError as exc:
            redis = {"status": "down", "error": exc.message}
    ready = redis["status"] == "up" and any(
        state["status"] == "up" and b.config.model_for(Role.GENERATOR) is not None
        for b, state in zip(backends, states, strict=True)
    )
    retrieval = services.retrieval.current
    retrieval_state = (
        {
            "status": "up",
            "store": "qdrant-local" if retrieval.store.local else "qdrant",
            "embedder": retrieval.embedder.model_id,
        }
        if retrieval is not None
        else _not_open(services.retrieval)
    )
    draining = services.draining_since is not None  # SIGTERM: send nothing new here
    ready = ready and not draining
    body: dict[str, Any] = {
        "status": "draining" if draining else "ready" if ready else "not_ready",
        "backends": report,
        "redis": redis,
        "retrieval": retrieval_state,
        "graph": await _graph(services),
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def _ping(redis: Redis) -> dict[str, Any]:
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            await redis.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        return {"status": "down", "error": type(exc).__name__}
    return {"status": "up"}


async def _graph(services: Services) -> dict[str, Any]:
    """The knowledge graph is optional: down or off is reported, not a reason to be unready."""
    graph = services.graph.current
    if graph is None:
        return _not_open(services.graph)
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            await graph.ping()
    except (SwitchboardError, TimeoutError) as exc:
        return {"status": "down", "error": str(exc)}
    return {"status": "up"}


def _not_open(opening: Opening[Any]) -> dict[str, Any]:
    """A dependency that opens after start-up and is not up: still `starting`, or `off`."""
    if opening.state == "starting":
        return {"status": "starting"}
    return {"status": "off", "error": opening.error}


async def _probe(backend: Backend) -> dict[str, Any]:
    circuit = backend.breaker.state
    state: dict[str, Any] = {"url": str(backend.config.base_url), "circuit": circuit.value}
    try:
        await backend.wire.probe(_PROBE_TIMEOUT)
    except Exception as exc:  # any failure means "down"; the reason is reported
        return {**state, "status": "down", "error": type(exc).__name__}
    status = "up" if circuit is not CircuitState.OPEN else "circuit_open"
    return {**state, "status": status}
