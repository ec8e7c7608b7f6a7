"""Resident memory and CPU time of a process and its descendants, read from /proc (psutil is not
a dependency; these are the same counters it reads on Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _children(pid: int) -> list[int]:
    found: list[int] = []
    task = Path(f"/proc/{pid}/task")
    try:
        threads = list(task.iterdir())
    except OSError:
        return found
    for thread in threads:
        try:
            found += [int(c) for c in (thread / "children").read_text().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...)."""
    result: list[int] = []
    queue = _children(pid)
    while queue:
        child = queue.pop()
        result.append(child)
        queue += _children(child)
    return result


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and every live descendant (children that already exited are not
    counted: the service's children live as long as it does)."""
    return cpu_seconds(pid) + sum(cpu_seconds(c) for c in descendants(pid))


@dataclass(frozen=True, slots=True)
class Footprint:
    service_mib: float  # the service process alone
    total_mib: float  # with every descendant
    children: dict[str, float]  # descendant name (pid) -> MiB


def footprint(pid: int) -> Footprint:
    """RSS of `pid` and of its descendants (the embedded valkey, Neo4j's JVM, ...), in MiB."""
    own = rss_kib(pid) / 1024
    children = {f"{_name(c)} ({c})": round(rss_kib(c) / 1024, 1) for c in descendants(pid)}
    return Footprint(round(own, 1), round(own + sum(children.values()), 1), children)
