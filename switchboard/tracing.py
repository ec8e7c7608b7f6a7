"""Tracing: one Langfuse trace per run, through Langfuse's Python SDK (OpenTelemetry spans sent by
a background thread to `<base_url>/api/public/otel/v1/traces`).

A run's trace id is chosen when the run is made — the caller's, when its request carries a W3C
`traceparent`, so the two traces join up — and travels with the run to whichever worker executes
it. There the run is the root span; graph nodes, retrieval and graph look-ups are spans under it,
and every model call is a generation (model, prompt, output, token usage, time to first token).

Tracing is process-wide, as OpenTelemetry's context is: `install` sets the process's `Tracing`,
and the places that make spans ask `current()`. Off (no keys, or disabled), every call here is a
no-op and Langfuse is never imported. On, nothing here waits on the network: spans are queued and
exported in the background, a failed export is a warning in the log, and only `close` waits for
the last ones, bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from switchboard.settings import TracingSettings

log = logging.getLogger(__name__)

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


@dataclass(frozen=True, slots=True)
class TraceRef:
    trace_id: str  # 32 lowercase hex digits, as W3C and Langfuse write it
    parent_span_id: str | None = None  # the caller's span, from its `traceparent`


def trace_ref(traceparent: str | None) -> TraceRef:
    """The trace a new run belongs to: the caller's (a valid `traceparent`), else a new one."""
    if traceparent:
        match = _TRACEPARENT.match(traceparent.strip().lower())
        if match and set(match[1]) != {"0"} and set(match[2]) != {"0"}:
            return TraceRef(match[1], match[2])
    return TraceRef(secrets.token_hex(16))


class Observation(Protocol):
    """What callers do with a span or a generation (Langfuse's, or the no-op one)."""

    def update(self, **fields: Any) -> Any: ...

    def end(self) -> Any: ...


class _Nothing:
    """The observation while tracing is off."""

    def update(self, **fields: Any) -> None:
        pass

    def end(self) -> None:
        pass


NOTHING = _Nothing()


class Tracing:
    def __init__(self, client: Any | None = None, trace_url: str | None = None) -> None:
        self._client = client  # langfuse.Langfuse, or None: off
        self._trace_url = trace_url

    @classmethod
    def start(cls, settings: TracingSettings) -> Tracing:
        if not settings.enabled:
            return cls()
        if not settings.public_key or settings.secret_key is None:
            log.info("tracing is off: SWITCHBOARD_TRACING__PUBLIC_KEY and SECRET_KEY are not set")
            return cls()
        from langfuse import Langfuse
        from opentelemetry.sdk.trace import TracerProvider

        client = Langfuse(
            public_key=settings.public_key,
            secret_key=settings.secret_key.get_secret_value(),
            base_url=settings.base_url,
            timeout=settings.export_timeout_s,
            flush_interval=settings.flush_interval_s,
            # Its own provider: the process's global one (and other libraries') stay untouched;
            # shut down by `close` only (not again at exit, where it could block for seconds).
            tracer_provider=TracerProvider(shutdown_on_exit=False),
        )
        for name in _EXPORT_LOGGERS:
            logging.getLogger(name).addFilter(_ExportFailures())
        log.info("tracing runs to Langfuse at %s", settings.base_url)
        return cls(client, settings.trace_url)

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def url(self, trace_id: str) -> str | None:
        """The trace's page in Langfuse's UI, when `TRACE_URL` is configured."""
        return self._trace_url.format(trace_id=trace_id) if self._trace_url else None

    @contextmanager
    def run(
        self,
        ref: TraceRef,
        *,
        name: str,
        session_id: str,
        user_id: str | None,
        tags: Sequence[str],
        input: Any,
        metadata: dict[str, str],
    ) -> Iterator[Observation]:
        """The root span of a run, current while the block runs: what is traced inside nests
        under it; the trace gets the session (thread), user, tags and name."""
        if self._client is None:
            yield NOTHING
            return
        from langfuse import propagate_attributes

        context = {"trace_id": ref.trace_id}
        if ref.parent_span_id is not None:
            context["parent_span_id"] = ref.parent_span_id
        with (
            self._client.start_as_current_observation(
                name=name, as_type="span", trace_context=context, input=input
            ) as root,
            propagate_attributes(
                session_id=session_id,
                user_id=user_id,
                tags=list(tags),
                trace_name=name,
                metadata=metadata,
            ),
        ):
            yield root

    @contextmanager
    def span(self, name: str, *, kind: str = "span", input: Any = None) -> Iterator[Observation]:
        """A span under the current one, current while the block runs (`kind`: Langfuse's
        observation type — span, chain, retriever, agent, tool, ...)."""
        if self._client is None:
            yield NOTHING
            return
        with self._client.start_as_current_observation(
            name=name, as_type=kind, input=input
        ) as span:
            yield span

    @contextmanager
    def tagged(self, tags: Sequence[str]) -> Iterator[None]:
        """Add tags to the current trace (on the spans made inside the block)."""
        if self._client is None:
            yield
            return
        from langfuse import propagate_attributes

        with propagate_attributes(tags=list(tags)):
            yield

    def generation(
        self, name: str, *, model: str | None, input: Any, parameters: dict[str, Any]
    ) -> Observation:
        """A model call under the current span; not made current (nothing nests under it), and
        the caller ends it."""
        if self._client is None:
            return NOTHING
        return self._client.start_observation(  # type: ignore[no-any-return]
            name=name,
            as_type="generation",
            model=model,
            input=input,
            model_parameters={k: v for k, v in parameters.items() if v is not None},
        )

    def observation(self, name: str, *, kind: str, parent: Any, **fields: Any) -> Observation:
        """A span under `parent` (an observation, or None: the current span), not made current:
        for events reported from other threads (CrewAI's)."""
        if self._client is None:
            return NOTHING
        if parent is not None and parent is not NOTHING:
            return parent.start_observation(name=name, as_type=kind, **fields)  # type: ignore[no-any-return]
        return self._client.start_observation(name=name, as_type=kind, **fields)  # type: ignore[no-any-return]

    def score(self, trace_id: str, name: str, value: float, comment: str | None = None) -> None:
        if self._client is not None:
            self._client.create_score(
                name=name, value=value, trace_id=trace_id, data_type="NUMERIC", comment=comment
            )

    async def close(self, wait_s: float) -> None:
        """Send what is left, waiting at most `wait_s`. Langfuse's shutdown blocks (each export
        and score batch retried within its timeout), so it runs in a daemon thread of its own:
        past `wait_s` it is left behind, and neither this loop nor the process waits for it."""
        if self._client is None:
            return
        client, self._client = self._client, None
        loop = asyncio.get_running_loop()
        stopped = loop.create_future()

        def settle() -> None:
            if not stopped.done():
                stopped.set_result(None)

        def shut_down() -> None:
            try:
                client.shutdown()
            except Exception:
                log.warning("tracing: shutting Langfuse's client down failed", exc_info=True)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                    loop.call_soon_threadsafe(settle)

        threading.Thread(target=shut_down, name="langfuse shutdown", daemon=True).start()
        try:
            await asyncio.wait_for(stopped, wait_s)
        except TimeoutError:
            log.warning("tracing: the last spans were not sent within %.1f s", wait_s)


# Where Langfuse's SDK and its OpenTelemetry exporter report failed exports (as errors, each time).
_EXPORT_LOGGERS = (
    "langfuse",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.sdk._shared_internal",
)


class _ExportFailures(logging.Filter):
    """A Langfuse that cannot be reached is a warning, once a minute per logger — not an error
    for every batch: the service itself is fine."""

    def __init__(self) -> None:
        super().__init__()
        self._last = -60.0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        now = time.monotonic()
        if now - self._last < 60:
            return False
        self._last = now
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_current = Tracing()


def current() -> Tracing:
    return _current


def install(tracing: Tracing) -> None:
    """Make `tracing` the process's (`Tracing()`: off)."""
    global _current
    _current = tracing
