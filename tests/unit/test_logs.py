"""JSON log lines carry the run's ids on every line logged in the run, also from the tasks it
starts, and none outside it."""

from __future__ import annotations

import asyncio
import json
import logging

from switchboard.logs import JsonFormatter, RunFields, run_context


class JsonLines(logging.Handler):
    """Log lines as `switchboard serve` writes them, parsed back."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, object]] = []
        self.addFilter(RunFields())
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def test_each_line_of_a_run_has_its_ids_and_no_other_line_has() -> None:
    log = logging.getLogger("test.logs")
    lines = JsonLines()
    log.addHandler(lines)
    log.setLevel(logging.INFO)

    async def run(run_id: str) -> None:
        run_context(run_id, f"thread-{run_id}", f"trace-{run_id}")
        log.info("started %s", run_id)
        await asyncio.create_task(child())  # a task the run starts inherits its ids

    async def child() -> None:
        await asyncio.sleep(0)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("child failed")

    try:
        await asyncio.gather(asyncio.create_task(run("a")), asyncio.create_task(run("b")))
        log.warning("outside")
    finally:
        log.removeHandler(lines)
    by_message: dict[str, list[dict[str, object]]] = {}
    for line in lines.lines:
        by_message.setdefault(str(line["message"]), []).append(line)
    for run_id in ("a", "b"):
        (started,) = by_message[f"started {run_id}"]
        assert started["run_id"] == run_id
        assert started["thread_id"] == f"thread-{run_id}"
        assert started["trace_id"] == f"trace-{run_id}"
        assert started["level"] == "info" and started["logger"] == "test.logs"
    failures = by_message["child failed"]
    assert sorted(str(f["run_id"]) for f in failures) == ["a", "b"]
    assert all("ValueError: boom" in str(f["exception"]) for f in failures)
    (outside,) = by_message["outside"]
    assert "run_id" not in outside and outside["level"] == "warning"
