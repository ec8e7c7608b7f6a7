"""The machine a benchmark ran on, and what else it was doing: every result JSON carries this, so
that a figure can be read against the hardware and the load it was taken under."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        return None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (runnable processes; on 2 cores, 2.0 is full)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def describe() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python and the load average now."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": f"{platform.python_version()} ({sys.implementation.name})",
        "load_average_start": load_average(),
    }


class Session:
    """One benchmark's run: the machine described when it starts, the load when it ends."""

    def __init__(self) -> None:
        self.machine = describe()
        self.started = time.time()
        self._clock = time.perf_counter()

    def finish(self) -> dict[str, Any]:
        """The description to save: the machine, the load average at the start and the end,
        when the run started and how long it took."""
        return {
            **self.machine,
            "load_average_end": load_average(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "duration_s": round(time.perf_counter() - self._clock, 1),
        }
