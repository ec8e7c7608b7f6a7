"""Reading the native event stream in tests."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Received:
    kind: str
    data: dict[str, Any]
    at: float  # time.monotonic() when the frame arrived


def iter_events(response: httpx.Response) -> Iterator[Received]:
    kind = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            yield Received(kind, json.loads(line[6:]), time.monotonic())


def stream_turn(
    base_url: str,
    text: str,
    timeout: float = 30,
    headers: dict[str, str] | None = None,
    **options: Any,
) -> list[Received]:
    """POST one user message to the native stream and return every event; `timeout` bounds
    each wait for bytes."""
    body = {"messages": [{"role": "user", "content": text}], **options}
    with httpx.stream(
        "POST", f"{base_url}/v1/chat/stream", json=body, headers=headers, timeout=timeout
    ) as response:
        assert response.status_code == 200, response.read()
        return list(iter_events(response))
