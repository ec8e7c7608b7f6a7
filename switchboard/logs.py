"""Logging: JSON lines (the default) or text, each line of a run carrying its run, thread and
trace ids.

The worker sets the ids when it starts executing a run (`run_context`); asyncio copies the
context into every task the run starts, so whatever logs on the run's behalf — graph nodes, model
calls, the crew's threads started with `asyncio.to_thread` — carries them.
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar
from typing import Any, Literal

# The run being executed: {"run_id", "thread_id", "trace_id"}; empty outside a run.
_RUN: ContextVar[dict[str, str] | None] = ContextVar("switchboard_run", default=None)


def run_context(run_id: str, thread_id: str, trace_id: str) -> None:
    """Mark what logs from the current task (and the tasks it starts) as the run's."""
    _RUN.set({"run_id": run_id, "thread_id": thread_id, "trace_id": trace_id})


class RunFields(logging.Filter):
    """Stamps each record with the ids of the run it was logged in, where it is logged (a
    handler may format it later, elsewhere)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_fields = _RUN.get() or {}
        return True


def _run_fields(record: logging.LogRecord) -> dict[str, str]:
    fields = getattr(record, "run_fields", None)
    return fields if fields is not None else (_RUN.get() or {})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_run_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        run = _run_fields(record)
        return f"{text} [run {run['run_id']}]" if run else text


def configure(level: str, format: Literal["json", "text"]) -> None:
    """The root logger's one handler (stderr), for this process and uvicorn's loggers."""
    handler = logging.StreamHandler()
    handler.addFilter(RunFields())
    if format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # A line per model call and per Langfuse export at `info` is noise (and CPU on every run).
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


_CHATTY = ("httpx", "httpcore")
