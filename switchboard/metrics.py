"""Prometheus metrics of this process, served at `/metrics`.

Names follow Prometheus conventions (`switchboard_` prefix, base units, `_total` on counters,
`_seconds` on durations); every label has a bounded set of values: HTTP routes are route
templates (`/threads/{thread_id}/runs`), never paths; workflows, routes, backends and models come
from the configuration. Process-wide, like the registry prometheus_client keeps by default, but
in a registry of our own so that only these are served.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

# Model calls and runs: from a few ms (scripted) to minutes (a crew on a CPU).
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

HTTP_REQUESTS = Counter(
    "switchboard_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "switchboard_http_request_duration_seconds",
    "From a request's arrival to the end of its response (a stream's last byte).",
    ["method", "route"],
    buckets=_SECONDS,
    registry=REGISTRY,
)
RUNS = Counter(
    "switchboard_runs",
    "Runs finished, by workflow, route taken and status.",
    ["workflow", "route", "status"],
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "switchboard_run_duration_seconds",
    "A run's execution, from its start on a worker to its end, by workflow and route.",
    ["workflow", "route"],
    buckets=_SECONDS,
    registry=REGISTRY,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "switchboard_llm_time_to_first_token_seconds",
    "From a streamed model call's request to its first token, by backend and model.",
    ["backend", "model"],
    buckets=_SECONDS,
    registry=REGISTRY,
)
TOKENS = Counter(
    "switchboard_llm_tokens",
    "Tokens into (prompt) and out of (completion) model calls, by backend and model; counted "
    "by Switchboard when the backend does not report them.",
    ["backend", "model", "direction"],
    registry=REGISTRY,
)
BACKEND_ERRORS = Counter(
    "switchboard_backend_errors",
    "Failed attempts at a model call, by backend and kind (retryable, transport, timeout, "
    "interrupted).",
    ["backend", "kind"],
    registry=REGISTRY,
)
CIRCUIT_STATE = Gauge(
    "switchboard_backend_circuit_state",
    "Each backend's circuit breaker: 1 for its current state (closed, half_open, open).",
    ["backend", "state"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "switchboard_run_queue_depth",
    "Runs queued or running (across all workers), read when scraped.",
    registry=REGISTRY,
)
ACTIVE_STREAMS = Gauge(
    "switchboard_active_streams",
    "Clients of this process following a run's events.",
    registry=REGISTRY,
)
STORE_DURATION = Histogram(
    "switchboard_store_operation_seconds",
    "Calls to the stores, by store (redis, qdrant, neo4j) and operation.",
    ["store", "operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)


@contextmanager
def timed(store: str, operation: str) -> Iterator[None]:
    """Time a call to a store (`STORE_DURATION`)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        STORE_DURATION.labels(store, operation).observe(time.perf_counter() - started)


def exposition() -> bytes:
    """The registry in Prometheus' text format."""
    return bytes(generate_latest(REGISTRY))
