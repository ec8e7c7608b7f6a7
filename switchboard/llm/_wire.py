"""The OpenAI-compatible wire protocol over one HTTP connection pool per backend.

This layer speaks HTTP and JSON and translates transport failures into a small vocabulary the
failover layer acts on; it knows nothing about roles, retries or other backends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from switchboard.errors import BackendRejected
from switchboard.settings import BackendConfig, LLMSettings


class RetryableFailure(Exception):
    """A failure worth retrying on the same backend (connect error, 429, 5xx)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class TransportFailure(Exception):
    """The connection broke or produced garbage: fail over, but do not hammer it again."""


class WireClient:
    """HTTP client for one backend. Built once; its pool is shared by every request."""

    def __init__(self, config: BackendConfig, settings: LLMSettings) -> None:
        self.config = config
        base = str(config.base_url).rstrip("/") + "/"
        # Streaming timeouts (first token, idle) are enforced by the caller per chunk; these
        # bound each socket operation so nothing can wait forever.
        timeout = httpx.Timeout(
            connect=settings.connect_timeout,
            read=max(settings.first_token_timeout, settings.idle_timeout, settings.request_timeout),
            write=settings.connect_timeout,
            pool=settings.connect_timeout,
        )
        self._http = httpx.AsyncClient(
            base_url=base,
            headers={"Authorization": f"Bearer {config.api_key}"},
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_connections,
            ),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _dialect(self, body: dict[str, Any]) -> dict[str, Any]:
        """Rewrite OpenAI's `json_schema` response format for backends that take the schema
        the llama-cpp-python way."""
        response_format = body.get("response_format")
        if (
            self.config.structured_output == "json_object"
            and isinstance(response_format, dict)
            and response_format.get("type") == "json_schema"
        ):
            schema = response_format["json_schema"]["schema"]
            return {**body, "response_format": {"type": "json_object", "schema": schema}}
        return body

    async def stream_chat(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """POST a streamed chat completion and yield each parsed chunk object as it arrives."""
        try:
            request = self._dialect(body)
            async with self._http.stream("POST", "chat/completions", json=request) as response:
                if response.status_code != 200:
                    await response.aread()
                    _raise_for_status(response)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        return
                    try:
                        yield json.loads(payload)
                    except json.JSONDecodeError:
                        raise TransportFailure(f"unparsable chunk: {payload[:80]!r}") from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise RetryableFailure(f"connect: {exc!r}") from None
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise TransportFailure(repr(exc)) from None

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST a non-streamed chat completion and return the parsed response object."""
        return await self._post_json("chat/completions", self._dialect(body))

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._post_json("embeddings", body)

    async def probe(self, timeout: float) -> None:
        """Raise unless the backend answers `GET /models` with 200 within `timeout` seconds."""
        response = await self._http.get("models", timeout=timeout)
        response.raise_for_status()

    async def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http.post(path, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise RetryableFailure(f"connect: {exc!r}") from None
        except httpx.TransportError as exc:
            raise TransportFailure(repr(exc)) from None
        _raise_for_status(response)
        try:
            data = response.json()
        except ValueError:
            raise TransportFailure("response is not JSON") from None
        if not isinstance(data, dict):
            raise TransportFailure("response is not a JSON object")
        return data


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status == 200:
        return
    detail = response.text[:300]
    if status == 429 or status >= 500:
        raise RetryableFailure(f"HTTP {status}: {detail}", _retry_after(response))
    raise BackendRejected(f"backend refused the request with HTTP {status}: {detail}")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
