"""The event model of a run: what every stream carries, in order.

A stream opens with `metadata`, carries `route`, `sources` (rag: before the first token), `token`
(one per backend chunk), `quality`, `retry` and `warning` as they happen, and ends with exactly one
`end` or `error`. The crew route adds `crew` events (agent and task started and finished, tool
calls and results, the reviewer's verdict), each naming its agent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    METADATA = "metadata"
    ROUTE = "route"
    SOURCES = "sources"
    TOKEN = "token"
    QUALITY = "quality"
    RETRY = "retry"
    WARNING = "warning"  # something degraded but the run goes on (e.g. the graph is down)
    CREW = "crew"  # a step of the research crew: {"agent", "type", ...}, namespaced by agent
    END = "end"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    data: dict[str, Any]

    def sse(self, event_id: int | str) -> bytes:
        """This event as one Server-Sent Events frame."""
        payload = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
        return f"id: {event_id}\nevent: {self.kind.value}\ndata: {payload}\n\n".encode()


def token(text: str) -> Event:
    return Event(EventKind.TOKEN, {"text": text})
