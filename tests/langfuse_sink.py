"""A loopback stand-in for a Langfuse server's ingestion: what the real Langfuse SDK sends is
received over HTTP and decoded — OTLP spans (protobuf, gzip) at `/api/public/otel/v1/traces` and
score batches (JSON) at `/api/public/scores` — so tests assert on exactly what a Langfuse server
would get. It answers as Langfuse does (200 with an empty OTLP response; 202 for scores)."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    attributes: dict[str, Any]

    @property
    def kind(self) -> str | None:
        """Langfuse's observation type (span, generation, chain, retriever, ...)."""
        value = self.attributes.get("langfuse.observation.type")
        return str(value) if value is not None else None

    def json(self, key: str) -> Any:
        """An attribute the SDK stores as JSON text (input, output, usage, metadata); a plain
        string it sends as it is."""
        raw = self.attributes.get(key)
        if not isinstance(raw, str):
            return raw
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw


@dataclass
class LangfuseSink:
    spans: list[Span] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for(self, found: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not found():
            if time.monotonic() > deadline:
                raise AssertionError("Langfuse received nothing of the kind in time")
            time.sleep(0.05)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with sink._lock:
                    sink.authorizations.append(self.headers.get("Authorization", ""))
                if self.path == "/api/public/otel/v1/traces":
                    sink._receive_spans(body)
                    self._reply(200, ExportTraceServiceResponse().SerializeToString())
                elif self.path == "/api/public/scores":
                    with sink._lock:
                        sink.scores.extend(json.loads(body))
                    self._reply(202, b'{"message":"Accepted"}')
                else:
                    self._reply(404, b"{}")

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _receive_spans(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        received = [
            Span(
                name=span.name,
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex() or None,
                attributes={a.key: _value(a.value) for a in span.attributes},
            )
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        with self._lock:
            self.spans.extend(received)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None
