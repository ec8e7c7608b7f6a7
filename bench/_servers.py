"""Server processes for the benchmarks: started, waited for, stopped."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def running(
    args: list[str], env: dict[str, str], ready_url: str, poll: float = 0.1
) -> Iterator[int]:
    """Run a server process until the block ends; yield its pid once `ready_url` answers 200
    (checked every `poll` seconds)."""
    process = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{args[:4]} exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args[:4]} not ready after 60 s")
            with contextlib.suppress(httpx.HTTPError):  # not listening yet
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            time.sleep(poll)
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)
