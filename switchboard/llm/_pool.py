"""Failover across backends: per role, try backends in order, with retries, timeouts and a
circuit breaker per backend.

A streamed call fails over only before its first token; after that a failure ends the call with
`StreamInterrupted` at once (a dropped connection surfaces immediately, a silent one after
`idle_timeout`), because a partial answer cannot be continued by another model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from switchboard import metrics
from switchboard.errors import (
    BackendTimeout,
    BackendUnavailable,
    StreamInterrupted,
)
from switchboard.llm._breaker import CircuitBreaker, CircuitState
from switchboard.llm._wire import RetryableFailure, TransportFailure, WireClient
from switchboard.llm.tokens import estimate_prompt_tokens, estimate_tokens
from switchboard.settings import BackendConfig, LLMSettings, Role
from switchboard.tracing import current as current_tracing

log = logging.getLogger(__name__)

_T = TypeVar("_T")

Message = dict[str, Any]


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False  # counted by us because the backend did not report it

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.estimated = self.estimated or other.estimated


# The tokens of the run being executed, added up across its model calls (the rate limits charge
# them to its caller); tasks the run starts share the same total.
RUN_USAGE: ContextVar[Usage | None] = ContextVar("run_usage", default=None)


@dataclass(slots=True)
class Completion:
    text: str
    backend: str
    model: str
    finish_reason: str
    usage: Usage


@dataclass(slots=True)
class Backend:
    """A configured backend with its connection pool and its circuit."""

    config: BackendConfig
    wire: WireClient
    breaker: CircuitBreaker

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(slots=True)
class _Attempt:
    backend: str
    error: str
    retry_after: float | None = None


class ChatStream:
    """One streamed chat call. Iterate it for the content pieces, one per backend chunk; after
    the iteration `usage`, `backend`, `model` and `finish_reason` describe the call."""

    def __init__(
        self, pool: LLMPool, role: Role, messages: Sequence[Message], params: dict[str, Any]
    ):
        self._pool = pool
        self._role = role
        self._messages = messages
        self._params = params
        self.usage = Usage()
        self.backend = ""
        self.model = ""
        self.finish_reason = "stop"
        self.first_token_at: datetime | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        # Traced, the call is a generation of the run's trace; off, not even a wrapper.
        return self._traced() if current_tracing().enabled else self._run()

    async def _traced(self) -> AsyncIterator[str]:
        generation = current_tracing().generation(
            self._role.value, model=None, input=list(self._messages), parameters=self._params
        )
        pieces: list[str] = []
        try:
            async for piece in self._run():
                pieces.append(piece)
                yield piece
        except (GeneratorExit, asyncio.CancelledError):
            raise  # the caller stopped reading: not the call's failure
        except BaseException as exc:
            generation.update(level="ERROR", status_message=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            _end_generation(generation, "".join(pieces), self)

    async def _run(self) -> AsyncIterator[str]:
        settings = self._pool.settings
        attempts: list[_Attempt] = []
        for backend, model in self._pool.candidates(self._role, attempts):
            body = {
                **self._params,
                "model": model,
                "messages": self._messages,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            for retry in range(settings.max_retries + 1):
                if retry:
                    await asyncio.sleep(self._pool.backoff(retry, attempts[-1]))
                started = False
                reported: Usage | None = None
                pieces = 0
                loop = asyncio.get_running_loop()
                asked = time.perf_counter()
                try:
                    async with asyncio.timeout(settings.first_token_timeout) as deadline:
                        async for chunk in backend.wire.stream_chat(body):
                            usage = chunk.get("usage")
                            if usage:
                                reported = Usage(
                                    usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
                                )
                            choices = chunk.get("choices")
                            if not choices:
                                continue
                            choice = choices[0]
                            if choice.get("finish_reason"):
                                self.finish_reason = choice["finish_reason"]
                            piece = (choice.get("delta") or {}).get("content")
                            if not piece:
                                continue
                            if not started:
                                started = True
                                backend.breaker.record_success()
                                self.backend, self.model = backend.name, model
                                self.first_token_at = datetime.now(UTC)
                                metrics.TIME_TO_FIRST_TOKEN.labels(backend.name, model).observe(
                                    time.perf_counter() - asked
                                )
                            pieces += 1
                            # The idle clock runs only while we wait on the backend, not while
                            # the consumer holds the piece.
                            deadline.reschedule(None)
                            yield piece
                            deadline.reschedule(loop.time() + settings.idle_timeout)
                except RetryableFailure as exc:
                    _count_error(backend, "interrupted" if started else "retryable")
                    if started:
                        backend.breaker.record_failure()
                        raise StreamInterrupted(f"{backend.name}: {exc.reason}") from None
                    attempts.append(_Attempt(backend.name, exc.reason, exc.retry_after))
                    continue
                except TransportFailure as exc:
                    _count_error(backend, "interrupted" if started else "transport")
                    backend.breaker.record_failure()
                    if started:
                        raise StreamInterrupted(f"{backend.name}: stream broke: {exc}") from None
                    attempts.append(_Attempt(backend.name, str(exc)))
                    break
                except TimeoutError:
                    _count_error(backend, "interrupted" if started else "timeout")
                    backend.breaker.record_failure()
                    if started:
                        raise StreamInterrupted(
                            f"{backend.name}: no token for {settings.idle_timeout:g}s"
                        ) from None
                    attempts.append(
                        _Attempt(
                            backend.name, f"no first token in {settings.first_token_timeout:g}s"
                        )
                    )
                    break
                except BaseException:
                    backend.breaker.release()
                    raise
                if not started:
                    # A clean, empty answer is still a working backend.
                    backend.breaker.record_success()
                    self.backend, self.model = backend.name, model
                self.usage = reported or Usage(
                    estimate_prompt_tokens(self._messages), pieces, estimated=True
                )
                _count_tokens(backend.name, model, self.usage)
                return
            else:
                backend.breaker.record_failure()
        raise _unavailable(self._role, attempts)


class LLMPool:
    """Every configured backend, and calls by role with retries and failover."""

    def __init__(self, settings: LLMSettings, backends: Sequence[BackendConfig]) -> None:
        self.settings = settings
        self.backends = [
            Backend(
                config=config,
                wire=WireClient(config, settings),
                breaker=CircuitBreaker(settings.breaker_threshold, settings.breaker_reset),
            )
            for config in backends
        ]

    async def aclose(self) -> None:
        await asyncio.gather(*(b.wire.aclose() for b in self.backends))

    def stream(self, role: Role, messages: Sequence[Message], **params: Any) -> ChatStream:
        """A streamed chat call for `role`; `params` are OpenAI request fields (max_tokens, ...)."""
        return ChatStream(self, role, messages, params)

    async def complete(self, role: Role, messages: Sequence[Message], **params: Any) -> Completion:
        """A non-streamed chat call for `role`, with the same retries and failover."""

        async def call(backend: Backend, model: str) -> Completion:
            body = {**params, "model": model, "messages": list(messages), "stream": False}
            data = await backend.wire.chat(body)
            completion = _parse_completion(data, backend.name, model, messages)
            _count_tokens(backend.name, model, completion.usage)
            return completion

        tracing = current_tracing()
        if not tracing.enabled:
            return await self._call(role, call)
        generation = tracing.generation(
            role.value, model=None, input=list(messages), parameters=params
        )
        try:
            completion = await self._call(role, call)
        except BaseException as exc:
            generation.update(level="ERROR", status_message=f"{type(exc).__name__}: {exc}")
            generation.end()
            raise
        _end_generation(generation, completion.text, completion)
        return completion

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embeddings of `texts` from the `embeddings` role, in order, with retries and failover."""

        async def call(backend: Backend, model: str) -> list[list[float]]:
            data = await backend.wire.embeddings({"model": model, "input": list(texts)})
            try:
                rows = sorted(data["data"], key=lambda row: row["index"])
                vectors = [[float(x) for x in row["embedding"]] for row in rows]
            except (KeyError, TypeError, ValueError):
                raise TransportFailure("embeddings response has no data[].embedding") from None
            if len(vectors) != len(texts):
                raise TransportFailure(f"{len(vectors)} embeddings for {len(texts)} inputs")
            return vectors

        return await self._call(Role.EMBEDDINGS, call)

    async def _call(self, role: Role, call: Callable[[Backend, str], Awaitable[_T]]) -> _T:
        """Run a non-streamed `call` on the backends for `role`: retries on the same backend for
        retryable failures, then failover; each backend's circuit records the outcome."""
        attempts: list[_Attempt] = []
        for backend, model in self.candidates(role, attempts):
            for retry in range(self.settings.max_retries + 1):
                if retry:
                    await asyncio.sleep(self.backoff(retry, attempts[-1]))
                try:
                    async with asyncio.timeout(self.settings.request_timeout):
                        result = await call(backend, model)
                except RetryableFailure as exc:
                    _count_error(backend, "retryable")
                    attempts.append(_Attempt(backend.name, exc.reason, exc.retry_after))
                    continue
                except TransportFailure as exc:
                    _count_error(backend, "transport")
                    attempts.append(_Attempt(backend.name, str(exc)))
                    break
                except TimeoutError:
                    _count_error(backend, "timeout")
                    reason = f"no answer in {self.settings.request_timeout:g}s"
                    attempts.append(_Attempt(backend.name, reason))
                    break
                except BaseException:
                    backend.breaker.release()
                    raise
                backend.breaker.record_success()
                return result
            backend.breaker.record_failure()
        raise _unavailable(role, attempts)

    def candidates(self, role: Role, attempts: list[_Attempt]) -> Iterator[tuple[Backend, str]]:
        """Backends that serve `role` with their model, in priority order, skipping (and noting
        in `attempts`) those whose circuit is open. Lazy: a circuit is claimed only when reached."""
        for backend in self.backends:
            model = backend.config.model_for(role)
            if model is None:
                continue
            if not backend.breaker.try_acquire():
                attempts.append(_Attempt(backend.name, "circuit open"))
                continue
            yield backend, model

    def backoff(self, retry: int, last: _Attempt) -> float:
        """Seconds before retry number `retry`: exponential, or the backend's Retry-After
        (capped at 5 s) when it asked for longer."""
        delay: float = self.settings.retry_backoff * 2.0 ** (retry - 1)
        if last.retry_after is not None:
            delay = max(delay, min(last.retry_after, 5.0))
        return delay

    def backend_for(self, role: Role) -> tuple[BackendConfig, str] | None:
        """The first backend serving `role` whose circuit is not open, with its model: for
        callers that talk to a backend themselves (the crew, through CrewAI's own client)."""
        for backend in self.backends:
            model = backend.config.model_for(role)
            if model is not None and backend.breaker.state is not CircuitState.OPEN:
                return backend.config, model
        return None

    def circuit_states(self) -> dict[str, CircuitState]:
        return {b.name: b.breaker.state for b in self.backends}


def _count_error(backend: Backend, kind: str) -> None:
    metrics.BACKEND_ERRORS.labels(backend.name, kind).inc()


def _count_tokens(backend: str, model: str, usage: Usage) -> None:
    metrics.TOKENS.labels(backend, model, "in").inc(usage.prompt_tokens)
    metrics.TOKENS.labels(backend, model, "out").inc(usage.completion_tokens)
    counted = RUN_USAGE.get()
    if counted is not None:
        counted.add(usage)


def _end_generation(generation: Any, output: str, call: ChatStream | Completion) -> None:
    """A model call's generation, completed: the model that answered, its output, token usage
    (ours when the backend reported none: `usage_estimated`) and first token's time."""
    fields: dict[str, Any] = {
        "output": output,
        "usage_details": {
            "input": call.usage.prompt_tokens,
            "output": call.usage.completion_tokens,
        },
        "metadata": {"backend": call.backend, "usage_estimated": call.usage.estimated},
    }
    if call.model:
        fields["model"] = call.model
    if isinstance(call, ChatStream) and call.first_token_at is not None:
        fields["completion_start_time"] = call.first_token_at
    generation.update(**fields)
    generation.end()


def _parse_completion(
    data: dict[str, Any], backend: str, model: str, messages: Sequence[Message]
) -> Completion:
    try:
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
        finish = choice.get("finish_reason") or "stop"
    except (KeyError, IndexError, TypeError, AttributeError):
        raise TransportFailure("response has no choices[0].message") from None
    usage = data.get("usage")
    if isinstance(usage, dict) and "completion_tokens" in usage:
        counted = Usage(usage.get("prompt_tokens", 0), usage["completion_tokens"])
    else:
        counted = Usage(estimate_prompt_tokens(messages), estimate_tokens(text), estimated=True)
    return Completion(text=text, backend=backend, model=model, finish_reason=finish, usage=counted)


def _unavailable(role: Role, attempts: list[_Attempt]) -> BackendUnavailable | BackendTimeout:
    if not attempts:
        return BackendUnavailable(f"no backend is configured for the {role.value} role")
    tried = "; ".join(f"{a.backend}: {a.error}" for a in attempts)
    if all(
        a.error.startswith("no first token") or a.error.startswith("no answer") for a in attempts
    ):
        return BackendTimeout(f"every backend for the {role.value} role timed out ({tried})")
    return BackendUnavailable(f"no backend could serve the {role.value} role ({tried})")


__all__ = ["Backend", "ChatStream", "Completion", "LLMPool", "Message", "Usage"]
