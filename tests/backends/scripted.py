"""A deterministic, scripted OpenAI-compatible LLM backend served over real HTTP on loopback.

Behaviour tests and benchmarks point Switchboard (or the ``openai`` client directly) at
:attr:`ScriptedBackend.url` and decide, reply by reply, what the "model" says, how fast it
says it and how it fails. Everything the backend receives is recorded so tests can assert on
what was sent upstream and on whether abandoned streams were cancelled.

The server is a raw ASGI application run by uvicorn, rather than a Starlette/FastAPI app, so
that the per-chunk path is a single pre-encoded ``send`` and so that the server can notice a
client disconnect while it is sleeping (ASGI ``http.disconnect``), not only when it next writes.

Run it in its own process for benchmarks::

    python -m tests.backends.scripted --port 8911 --text-tokens 256 --ttft-ms 20 --gap-ms 10

which prints ``READY <url>`` on stdout once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import hashlib
import json
import math
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, MutableMapping
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, Final, Literal

import uvicorn

__all__ = ["DEFAULT_TEXT", "Failure", "Reply", "ScriptedBackend", "bench_tokens", "main"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

Failure = Literal["http500", "http429", "hang", "drop", "hang_mid"]
"""The ways a :class:`Reply` can fail; see :class:`Reply` for what each one does."""

DEFAULT_TEXT: Final = "Hello from the scripted backend."
"""The text of ``Reply()``; replies that carry tool calls send no content while text is this."""

_FINGERPRINT: Final = "fp_scripted"
# A placeholder no model name can contain: the content chunk is serialised once per request
# around it and split there, so each token piece costs one json.dumps of the piece itself.
_HOLE: Final = "\0piece\0"
_PIECE_RE: Final = re.compile(r"\s*\S+|\s+")
_JSON_HEADERS: Final = [(b"content-type", b"application/json")]
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
_DONE: Final = b"data: [DONE]\n\n"


@dataclass
class Reply:
    """One scripted answer to a chat-completion request.

    ``text`` is the assistant content. ``tokens`` overrides how it is streamed: one SSE chunk
    per piece, in order; by default the text is cut into words that keep their leading
    whitespace (``"Hi there"`` -> ``["Hi", " there"]``), and the pieces always join back into
    the text. ``completion_tokens`` in usage is the number of pieces.

    ``ttft`` is the delay before anything is written (the status line and first chunk when
    streaming, the whole response otherwise, including http500/http429 failures). ``gap`` is
    the delay between consecutive content pieces. ``usage=False`` leaves usage out entirely;
    with ``usage=True`` non-streaming responses carry it and streams send a usage chunk only if
    the request asked for ``stream_options.include_usage``.

    ``tool_calls`` (OpenAI shape; missing ``id``/``type`` are filled in) makes ``finish_reason``
    ``"tool_calls"``. Such replies have ``content: null`` unless ``text`` was changed from
    :data:`DEFAULT_TEXT` (or ``tokens`` given) to something non-empty; when streamed, all calls
    go in one chunk after any content pieces. Each call adds the word count of its arguments
    (at least 1) to ``completion_tokens``.

    ``failure``:

    * ``"http500"`` / ``"http429"``: that status with an OpenAI error envelope; 429 carries
      ``Retry-After: retry_after`` when it is set.
    * ``"hang"``: never answers, until the client goes away (recorded as a cancellation).
    * ``"drop"``: streaming sends the role chunk and ``fail_after`` content pieces, then closes
      the TCP connection mid chunked body; non-streaming closes it without any response.
    * ``"hang_mid"``: streaming sends the role chunk and ``fail_after`` content pieces, then
      goes silent until the client goes away (recorded); non-streaming behaves like ``"hang"``.
    """

    text: str = DEFAULT_TEXT
    tokens: list[str] | None = None
    ttft: float = 0.0
    gap: float = 0.0
    usage: bool = True
    tool_calls: list[dict[str, Any]] | None = None
    failure: Failure | None = None
    fail_after: int = 0
    retry_after: float | None = None

    def pieces(self) -> list[str]:
        """The content pieces this reply streams, one per SSE chunk."""
        if self.tokens is not None:
            return list(self.tokens)
        return _PIECE_RE.findall(self.text)

    def content(self) -> str | None:
        """The assistant ``content`` this reply carries (``None`` for a bare tool call)."""
        content = "".join(self.pieces())
        if self.tool_calls and (content == "" or (self.tokens is None and content == DEFAULT_TEXT)):
            return None
        return content


def bench_tokens(count: int) -> list[str]:
    """``count`` distinct benchmark pieces: ``["t0", " t1", " t2", ...]``."""
    return [f"t{i}" if i == 0 else f" t{i}" for i in range(count)]


class ScriptedBackend:
    """An OpenAI-compatible HTTP server on loopback whose every reply is scripted.

    Endpoints under :attr:`url` (also served without the ``/v1`` prefix): ``GET /models``,
    ``POST /chat/completions`` (streaming and not), ``POST /embeddings``, and ``GET /health``.

    Each chat request takes, in order of precedence: the oldest reply queued for its exact
    ``model`` (:meth:`enqueue` with ``model``), the oldest reply queued for any model, the
    default for its model, the global default (:meth:`set_default`), and finally ``Reply()``.
    Queued replies are used once; note that a client retrying a failed request (the ``openai``
    client retries 429/500/connection errors unless ``max_retries=0``) takes the next reply.
    Embedding requests do not consume replies.

    The scripting and observation methods are thread-safe; the server runs uvicorn on its own
    event loop in a daemon thread, so tests may drive it from any thread or event loop.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        embedding_dim: int = 384,
        loop: str = "asyncio",
        http: str = "auto",
    ) -> None:
        """Configure, but do not start, a backend listening on ``host:port``.

        ``port=0`` picks a free port at :meth:`start`. ``embedding_dim`` is the length of
        embedding vectors unless a request asks for ``dimensions``. ``loop`` and ``http`` are
        uvicorn's implementation choices (the CLI uses ``"uvloop"``/``"httptools"``).
        """
        self.host = host
        self.embedding_dim = embedding_dim
        self.requests: list[dict[str, Any]] = []
        """Every JSON body received (chat and embeddings), in arrival order, plus ``path``."""
        self.cancellations: list[float] = []
        """``time.monotonic()`` of each moment a client abandoned an unfinished response."""
        self._requested_port = port
        self._port = port
        self._loop_kind = loop
        self._http_kind = http
        self._lock = threading.Lock()
        self._any_queue: deque[Reply] = deque()
        self._model_queues: dict[str, deque[Reply]] = {}
        self._default: Reply | None = None
        self._model_defaults: dict[str, Reply] = {}
        self._active_streams = 0
        self._ids = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port; the one actually bound once started with ``port=0``."""
        return self._port

    @property
    def url(self) -> str:
        """The OpenAI ``base_url``: ``http://127.0.0.1:<port>/v1`` (or the configured host)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._port}/v1"

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> ScriptedBackend:
        """Start serving; return (``self``) only once the server accepts connections.

        Raises ``OSError`` if the port cannot be bound and ``RuntimeError`` if the server
        fails to come up within ``timeout`` seconds or is already running.
        """
        if self._thread is not None:
            raise RuntimeError("ScriptedBackend is already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto must be IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets
        # whose proto says TCP, and without it every response split over two writes (headers,
        # body) stalls ~40 ms on Nagle plus the client's delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Binding here, not in uvicorn, reports a busy port to the caller as a plain
            # OSError and tells us the port chosen for port=0 before anything else happens.
            sock.bind((self.host, self._requested_port))
        except BaseException:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._asgi,
            interface="asgi3",
            loop=self._loop_kind,
            http=self._http_kind,
            ws="none",
            lifespan="off",
            log_level="warning",
            # None keeps uvicorn from dictConfig-ing the process's logging.
            log_config=None,
            # X-Forwarded-For from a proxy under test would otherwise rewrite scope["client"],
            # which "drop" uses to find the connection to close.
            proxy_headers=False,
            timeout_graceful_shutdown=2,
            # Longer than uvicorn's 5 s so pooled client connections are not closed under a
            # test or benchmark that pauses, which races with the client reusing them.
            timeout_keep_alive=75,
        )
        server = uvicorn.Server(config)
        self._stopping = False
        self._error = None
        self._server = server
        self._loop = None
        thread = threading.Thread(
            target=self._serve,
            args=(server, sock),
            name=f"scripted-backend:{self._port}",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not (server.started and self._loop is not None):
            if not thread.is_alive():
                self._thread = None
                raise RuntimeError("scripted backend failed to start") from self._error
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"scripted backend did not start within {timeout} s")
            time.sleep(0.002)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection, stop the server and join its thread. Idempotent.

        Requests still in flight end without being recorded as cancellations.
        """
        thread, server, loop = self._thread, self._server, self._loop
        if thread is None or server is None:
            return
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(self._shut_down, server)
        else:
            server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"scripted backend did not stop within {timeout} s")
        self._thread = None
        self._server = None
        self._loop = None

    def __enter__(self) -> ScriptedBackend:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve(sockets=[sock])

        try:
            with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
                runner.run(serve())
        except BaseException as exc:  # uvicorn reports startup failures with SystemExit
            self._error = exc
        finally:
            sock.close()

    def _shut_down(self, server: uvicorn.Server) -> None:
        self._stopping = True
        server.should_exit = True
        # uvicorn waits for in-flight responses before exiting; hung ones never finish, so
        # cut every connection, which lets each request see its disconnect and unwind.
        for conn in list(server.server_state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abort()

    # -- scripting ---------------------------------------------------------------------------

    def enqueue(self, reply: Reply, model: str | None = None) -> None:
        """Queue ``reply`` for the next chat request for ``model`` (any model if ``None``)."""
        with self._lock:
            if model is None:
                self._any_queue.append(reply)
            else:
                self._model_queues.setdefault(model, deque()).append(reply)

    def set_default(self, reply: Reply, model: str | None = None) -> None:
        """Use ``reply`` for requests for ``model`` (all models if ``None``) with none queued."""
        with self._lock:
            if model is None:
                self._default = reply
            else:
                self._model_defaults[model] = reply

    def reset(self) -> None:
        """Forget queued replies, defaults, recorded requests and cancellations.

        The recording lists are cleared in place, so references to them stay live.
        """
        with self._lock:
            self._any_queue.clear()
            self._model_queues.clear()
            self._default = None
            self._model_defaults.clear()
            self.requests.clear()
            self.cancellations.clear()

    def _take(self, model: str | None) -> Reply:
        with self._lock:
            if model is not None:
                queue = self._model_queues.get(model)
                if queue:
                    return queue.popleft()
            if self._any_queue:
                return self._any_queue.popleft()
            if model is not None and model in self._model_defaults:
                return self._model_defaults[model]
            return self._default if self._default is not None else Reply()

    # -- observation -------------------------------------------------------------------------

    def request_count(self, model: str | None = None, path: str | None = None) -> int:
        """How many JSON requests were received, optionally only for ``model`` / ``path``.

        ``path`` is matched against the request path, e.g. ``"/v1/chat/completions"``.
        """
        with self._lock:
            return sum(
                1
                for body in self.requests
                if (model is None or body.get("model") == model)
                and (path is None or body.get("path") == path)
            )

    @property
    def active_streams(self) -> int:
        """Streaming chat requests being served now (from receipt until finished or abandoned)."""
        return self._active_streams

    def _record(self, body: dict[str, Any], path: str) -> None:
        with self._lock:
            self.requests.append({**body, "path": path})

    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    # -- ASGI --------------------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        route = path[3:] if path.startswith("/v1/") else path
        method: str = scope["method"]
        if route == "/chat/completions" and method == "POST":
            body = await self._read_json(receive, send)
            if body is not None:
                await self._chat(scope, receive, send, body, path)
        elif route == "/embeddings" and method == "POST":
            body = await self._read_json(receive, send)
            if body is not None:
                self._record(body, path)
                await self._embeddings(send, body)
        elif route == "/models" and method == "GET":
            await _send_json(send, 200, self._models())
        elif route == "/health" and method == "GET":
            await _send_json(send, 200, {"status": "ok"})
        elif route in ("/chat/completions", "/embeddings", "/models", "/health"):
            await _send_error(send, 405, f"Method {method} not allowed", "invalid_request_error")
        else:
            await _send_error(send, 404, f"Unknown path {path}", "invalid_request_error")

    async def _read_json(self, receive: Receive, send: Send) -> dict[str, Any] | None:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            body = json.loads(b"".join(chunks))
        except ValueError:
            body = None
        if not isinstance(body, dict):
            await _send_error(
                send, 400, "Request body must be a JSON object", "invalid_request_error"
            )
            return None
        return body

    def _models(self) -> dict[str, Any]:
        with self._lock:
            names = ["scripted", *sorted(m for m in self._model_defaults if m != "scripted")]
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "scripted"}
                for name in names
            ],
        }

    async def _chat(
        self, scope: Scope, receive: Receive, send: Send, body: dict[str, Any], path: str
    ) -> None:
        self._record(body, path)
        requested = body.get("model")
        model = requested if isinstance(requested, str) else None
        reply = self._take(model)
        stream = bool(body.get("stream"))
        options = body.get("stream_options")
        include_usage = (
            stream
            and reply.usage
            and isinstance(options, dict)
            and bool(options.get("include_usage"))
        )
        job = _ChatJob(
            backend=self,
            scope=scope,
            send=send,
            reply=reply,
            model=model or "scripted",
            completion_id=f"chatcmpl-scripted-{self._next_id()}",
            prompt_tokens=_count_prompt_words(body.get("messages")),
            include_usage=include_usage,
        )
        work = job.stream() if stream else job.respond()
        if stream:
            self._active_streams += 1
        try:
            await self._supervise(receive, work)
        finally:
            if stream:
                self._active_streams -= 1

    async def _supervise(self, receive: Receive, work: Coroutine[Any, Any, bool]) -> None:
        # The response is produced in its own task while this one listens for the client
        # going away, so a disconnect is noticed (and the work cancelled) even while the
        # work sleeps through ttft, a gap or a hang, not only at its next write.
        job = asyncio.ensure_future(work)
        watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            await asyncio.wait((job, watcher), return_when=asyncio.FIRST_COMPLETED)
            if job.done() and not job.cancelled() and job.exception() is None and job.result():
                # The job closed the connection itself ("drop"); returning before uvicorn has
                # seen the connection go would make it log an unfinished response.
                await asyncio.wait((watcher,), timeout=2.0)
        finally:
            abandoned = not job.done()
            if abandoned and watcher.done() and not watcher.cancelled() and not self._stopping:
                with self._lock:
                    self.cancellations.append(watcher.result())
            job.cancel()
            watcher.cancel()
            # Let both unwind so none outlives the request (or the loop, at shutdown).
            await asyncio.wait((job, watcher))
        if not job.cancelled() and (error := job.exception()) is not None:
            raise error

    def _drop_connection(self, scope: Scope) -> None:
        server = self._server
        client = scope.get("client")
        if server is not None and client is not None:
            for conn in list(server.server_state.connections):
                if getattr(conn, "client", None) == client:
                    # close(), not abort(): the pieces already written must reach the client
                    # before the connection goes, and close() flushes the write buffer first.
                    conn.transport.close()
                    return
        # Unreachable with uvicorn's own protocols; an exception at least makes uvicorn
        # close a started response abruptly.
        raise RuntimeError("scripted drop: connection not found")

    async def _embeddings(self, send: Send, body: dict[str, Any]) -> None:
        # Vectors are never scripted, but failures are: a reply scripted for the embedding
        # model with an HTTP failure answers that request with the error.
        requested = body.get("model")
        reply = self._take(requested if isinstance(requested, str) else None)
        if reply.failure in ("http500", "http429"):
            status = 500 if reply.failure == "http500" else 429
            await _send_error(send, status, f"scripted embeddings {reply.failure}", "server_error")
            return
        texts = _embedding_inputs(body.get("input"))
        dimensions = body.get("dimensions", self.embedding_dim)
        if texts is None or not isinstance(dimensions, int) or dimensions <= 0:
            await _send_error(
                send,
                400,
                "input must be a string or a list of strings; dimensions a positive integer",
                "invalid_request_error",
            )
            return
        as_base64 = body.get("encoding_format") == "base64"
        data: list[dict[str, Any]] = []
        for index, text in enumerate(texts):
            vector = _embed(text, dimensions)
            embedding: list[float] | str = (
                base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
                if as_base64
                else list(vector)
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        words = sum(len(text.split()) for text in texts)
        model = body.get("model")
        await _send_json(
            send,
            200,
            {
                "object": "list",
                "data": data,
                "model": model if isinstance(model, str) else "scripted",
                "usage": {"prompt_tokens": words, "total_tokens": words},
            },
        )


class _ChatJob:
    """Produces one chat-completion response; returns True when it dropped the connection."""

    def __init__(
        self,
        *,
        backend: ScriptedBackend,
        scope: Scope,
        send: Send,
        reply: Reply,
        model: str,
        completion_id: str,
        prompt_tokens: int,
        include_usage: bool,
    ) -> None:
        self.backend = backend
        self.scope = scope
        self.send = send
        self.reply = reply
        self.model = model
        self.id = completion_id
        self.created = int(time.time())
        self.prompt_tokens = prompt_tokens
        self.include_usage = include_usage
        self.pieces = reply.pieces()
        self.content = reply.content()
        if self.content is None:
            self.pieces = []
        self.tool_calls = _normalise_tool_calls(reply.tool_calls or [])
        self.finish_reason = "tool_calls" if self.tool_calls else "stop"

    def usage(self) -> dict[str, int]:
        completion = len(self.pieces) + sum(
            max(1, len(call["function"]["arguments"].split())) for call in self.tool_calls
        )
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    async def _start(self) -> bool:
        """Apply hang/ttft/HTTP-error failures; True when the response was already sent."""
        reply = self.reply
        if reply.failure == "hang":
            await _forever()
        if reply.ttft > 0:
            await asyncio.sleep(reply.ttft)
        if reply.failure == "http500":
            await _send_error(
                self.send, 500, "The scripted backend failed (http500).", "server_error"
            )
            return True
        if reply.failure == "http429":
            headers: list[tuple[bytes, bytes]] = []
            if reply.retry_after is not None:
                headers.append((b"retry-after", f"{reply.retry_after:g}".encode()))
            await _send_error(
                self.send,
                429,
                "Rate limit reached (scripted http429).",
                "requests",
                code="rate_limit_exceeded",
                headers=headers,
            )
            return True
        return False

    async def respond(self) -> bool:
        """Send a non-streaming ``chat.completion``."""
        if await self._start():
            return False
        if self.reply.failure == "drop":
            self.backend._drop_connection(self.scope)
            return True
        if self.reply.failure == "hang_mid":
            await _forever()
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        completion: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": _FINGERPRINT,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
        }
        if self.reply.usage:
            completion["usage"] = self.usage()
        await _send_json(self.send, 200, completion)
        return False

    async def stream(self) -> bool:
        """Send a ``text/event-stream`` of ``chat.completion.chunk`` events."""
        if await self._start():
            return False
        send, reply = self.send, self.reply
        envelope: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": _FINGERPRINT,
            "choices": [],
        }
        if self.include_usage:
            # As OpenAI does: with include_usage every chunk carries "usage": null but the last.
            envelope["usage"] = None

        def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return b"data: " + _dumps({**envelope, "choices": [choice]}) + b"\n\n"

        prefix, suffix = event({"content": _HOLE}).split(_dumps(_HOLE), 1)
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        await send(_body(event({"role": "assistant", "content": ""})))
        limit = len(self.pieces)
        if reply.failure in ("drop", "hang_mid"):
            limit = min(limit, max(0, reply.fail_after))
        for index in range(limit):
            if index and reply.gap > 0:
                await asyncio.sleep(reply.gap)
            piece = json.dumps(self.pieces[index], ensure_ascii=False).encode()
            await send(_body(prefix + piece + suffix))
        if reply.failure == "drop":
            self.backend._drop_connection(self.scope)
            return True
        if reply.failure == "hang_mid":
            await _forever()
        if self.tool_calls:
            if self.pieces and reply.gap > 0:
                await asyncio.sleep(reply.gap)
            calls = [{"index": i, **call} for i, call in enumerate(self.tool_calls)]
            await send(_body(event({"tool_calls": calls})))
        await send(_body(event({}, self.finish_reason)))
        if self.include_usage:
            usage_chunk = {**envelope, "usage": self.usage()}
            await send(_body(b"data: " + _dumps(usage_chunk) + b"\n\n"))
        await send(_body(_DONE, more_body=False))
        return False


# -- helpers ---------------------------------------------------------------------------------


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _body(data: bytes, *, more_body: bool = True) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more_body}


async def _send_json(
    send: Send, status: int, payload: Any, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    data = _dumps(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON_HEADERS, (b"content-length", str(len(data)).encode()), *headers],
        }
    )
    await send(_body(data, more_body=False))


async def _send_error(
    send: Send,
    status: int,
    message: str,
    kind: str,
    *,
    code: str | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    envelope = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    await _send_json(send, status, envelope, headers)


async def _wait_for_disconnect(receive: Receive) -> float:
    """Return ``time.monotonic()`` when the client disconnects (or the response completes)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return time.monotonic()


async def _forever() -> None:
    await asyncio.get_running_loop().create_future()


def _count_prompt_words(messages: Any) -> int:
    if not isinstance(messages, list):
        return 0
    words = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            words += len(content.split())
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    words += len(part["text"].split())
    return words


def _normalise_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    normalised = []
    for index, call in enumerate(calls):
        function = call.get("function") or {}
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        normalised.append(
            {
                "id": call.get("id") or f"call_scripted_{index}",
                "type": call.get("type", "function"),
                "function": {"name": function.get("name", ""), "arguments": arguments},
            }
        )
    return normalised


def _embedding_inputs(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    # Pre-tokenised input (a list of ints, or of lists of ints) is hashed by its JSON text.
    if isinstance(value, list) and value and all(isinstance(item, int) for item in value):
        return [json.dumps(value)]
    if isinstance(value, list) and value and all(isinstance(item, list) for item in value):
        return [json.dumps(item) for item in value]
    return None


@functools.lru_cache(maxsize=4096)
def _embed(text: str, dimensions: int) -> tuple[float, ...]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return tuple(x / norm for x in vector)


# -- CLI -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Serve a default reply of ``--text-tokens`` pieces until SIGINT/SIGTERM.

    Prints ``READY <url>`` (flushed) once the server accepts connections.
    """
    parser = argparse.ArgumentParser(
        prog="python -m tests.backends.scripted",
        description="Scripted OpenAI-compatible backend for benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8911, help="0 picks a free port")
    parser.add_argument(
        "--text-tokens", type=int, default=256, help='pieces per reply: "t0", " t1", ...'
    )
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--gap-ms", type=float, default=0.0)
    parser.add_argument("--embedding-dim", type=int, default=384)
    args = parser.parse_args(argv)

    tokens = bench_tokens(args.text_tokens)
    backend = ScriptedBackend(
        args.host,
        args.port,
        embedding_dim=args.embedding_dim,
        loop="uvloop" if _importable("uvloop") else "asyncio",
        http="httptools" if _importable("httptools") else "h11",
    )
    backend.set_default(
        Reply(
            text="".join(tokens),
            tokens=tokens,
            ttft=args.ttft_ms / 1000,
            gap=args.gap_ms / 1000,
        )
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    backend.start()
    print(f"READY {backend.url}", flush=True)
    try:
        while not stop.wait(0.5):
            if not backend.running:
                print("scripted backend stopped unexpectedly", file=sys.stderr)
                return 1
    finally:
        backend.stop()
    return 0


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
