"""A lean SSE load client over raw asyncio streams.

httpx costs tens of microseconds per chunk; at 100 streams of 256 tokens on 2 cores that makes
the client, not the servers, the bottleneck. This client speaks just enough HTTP/1.1 (keep-alive,
chunked SSE responses ending in `data: [DONE]`) to time the first content chunk and the end.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class StreamSample:
    ttft: float  # seconds to the first content chunk
    total: float  # seconds to `data: [DONE]`
    events: int  # content chunks received
    error: str | None
    gaps: list[float] | None = None  # seconds between content chunks, when asked for


class Connection:
    """One keep-alive connection that runs streamed chat requests one after another."""

    def __init__(self, host: str, port: int, *, gaps: bool = False) -> None:
        self.host = host
        self.port = port
        self._gaps = gaps
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def stream(self, path: str, body: dict[str, Any]) -> StreamSample:
        payload = json.dumps(body).encode()
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        started = time.perf_counter()
        try:
            # A kept-alive connection may have been closed by the server while idle (uvicorn
            # closes after 5 s); like any HTTP client, open a new one and send again.
            for reused in (self._writer is not None, False):
                if self._writer is None:
                    self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
                assert self._reader is not None
                self._writer.write(request)
                status = await self._reader.readline()
                if status or not reused:
                    break
                await self.close()
            assert self._reader is not None
            return await self._read(self._reader, status, started)
        except (OSError, asyncio.IncompleteReadError) as exc:
            await self.close()
            return StreamSample(0, 0, 0, repr(exc))

    async def _read(
        self, reader: asyncio.StreamReader, status: bytes, started: float
    ) -> StreamSample:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # headers
        if b" 200 " not in status:
            await self.close()
            return StreamSample(0, 0, 0, status.decode().strip())
        first = 0.0
        events = 0
        gaps: list[float] | None = [] if self._gaps else None
        last = 0.0
        while True:
            line = await reader.readline()
            if not line:
                await self.close()
                return StreamSample(0, 0, events, "connection closed before [DONE]")
            if not line.startswith(b"data: "):
                continue
            data = line[6:].strip()
            if data == b"[DONE]":
                total = time.perf_counter() - started
                while (await reader.readline()) != b"0\r\n":
                    pass  # the rest of the chunked body: its terminating chunk
                await reader.readline()
                return StreamSample(first, total, events, None, gaps)
            chunk = json.loads(data)
            if "error" in chunk:
                await self.close()
                return StreamSample(0, 0, events, str(chunk["error"]))
            choices = chunk.get("choices")
            if choices and choices[0].get("delta", {}).get("content"):
                events += 1
                now = time.perf_counter()
                if events == 1:
                    first = now - started
                elif gaps is not None:
                    gaps.append(now - last)
                last = now
