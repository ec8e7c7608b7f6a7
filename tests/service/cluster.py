"""Switchboard as separate processes against one Redis: API processes (no worker inside) and
`switchboard worker` processes, each with a data folder of its own, which a test can kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis

from switchboard.processes import free_port
from switchboard.runs import GROUP, QUEUE
from tests.backends import ScriptedBackend
from tests.conftest import backend_entry

ROOT = Path(__file__).resolve().parents[2]


class Cluster:
    def __init__(
        self,
        backend: ScriptedBackend,
        redis_url: str,
        logs: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self._env = {
            **os.environ,
            "SWITCHBOARD_LLM__BACKENDS": json.dumps([backend_entry("p", backend)]),
            "SWITCHBOARD_REDIS__URL": redis_url,
            # Every step checkpointed: a reclaimed run resumes after its last finished node.
            "SWITCHBOARD_REDIS__DURABILITY": "sync",
            "SWITCHBOARD_RUNTIME__LEASE_MS": "1000",
            "SWITCHBOARD_LOCAL__MODE": "off",
            "SWITCHBOARD_AUTH__MODE": "off",
            "SWITCHBOARD_EMBEDDINGS__MODE": "backend",
            "SWITCHBOARD_GRAPH__ENABLED": "false",
            "SWITCHBOARD_CREW__ENABLED": "false",
            "SWITCHBOARD_SERVER__LOG_LEVEL": "info",
            **(env or {}),
        }
        self._redis = redis.Redis.from_url(redis_url)
        self._logs = logs
        self._processes: list[subprocess.Popen[bytes]] = []

    def _spawn(self, args: list[str], name: str, extra: dict[str, str]) -> subprocess.Popen[bytes]:
        data_dir = tempfile.mkdtemp(prefix=f"switchboard-{name}-")
        with (self._logs / f"{name}-{len(self._processes)}.log").open("wb") as log:
            process = subprocess.Popen(
                args,
                cwd=ROOT,
                env={**self._env, "SWITCHBOARD_SERVER__DATA_DIR": data_dir, **extra},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._processes.append(process)
        return process

    def api(self) -> str:
        """An API process without a worker; its URL once it is ready."""
        port = free_port()
        args = [
            sys.executable, "-m", "uvicorn", "--factory", "api.app:app_from_environment",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ]  # fmt: skip
        process = self._spawn(args, "api", {"SWITCHBOARD_RUNTIME__WORKER": "false"})
        url = f"http://127.0.0.1:{port}"
        self._wait(process, lambda: _answers(f"{url}/readyz"))
        return url

    def serve(self, concurrency: int = 32) -> tuple[str, subprocess.Popen[bytes]]:
        """An API process with its own worker (as `switchboard serve` runs by default): its URL
        once it is ready, and the process."""
        port = free_port()
        args = [
            sys.executable, "-m", "uvicorn", "--factory", "api.app:app_from_environment",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ]  # fmt: skip
        process = self._spawn(args, "serve", {"SWITCHBOARD_RUNTIME__CONCURRENCY": str(concurrency)})
        url = f"http://127.0.0.1:{port}"
        self._wait(process, lambda: _answers(f"{url}/readyz"))
        return url, process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        """What a process has logged so far."""
        index = self._processes.index(process)
        found = next(self._logs.glob(f"*-{index}.log"))
        return found.read_text(errors="replace")

    def worker(self, concurrency: int = 32) -> subprocess.Popen[bytes]:
        """A worker process, once it reads the queue."""
        args = [sys.executable, "-c", "from switchboard.cli import main; main(['worker'])"]
        process = self._spawn(
            args, "worker", {"SWITCHBOARD_RUNTIME__CONCURRENCY": str(concurrency)}
        )
        self._wait(process, lambda: process.pid in self.worker_pids())
        return process

    def worker_pids(self) -> set[int]:
        """Processes that are consumers of the queue (the pid is in each worker's name)."""
        try:
            consumers = self._redis.xinfo_consumers(QUEUE, GROUP)
        except redis.ResponseError:
            return set()
        return {int(c["name"].decode().split("-")[-2]) for c in consumers}

    def holder(self, run_id: str) -> int | None:
        """The pid of the worker holding the run's lease."""
        name = self._redis.get(f"switchboard:run:{run_id}:lease")
        return int(name.decode().split("-")[-2]) if name else None

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def _wait(self, process: subprocess.Popen[bytes], ready: object) -> None:
        deadline = time.monotonic() + 60
        while not ready():  # type: ignore[operator]
            if process.poll() is not None:
                raise RuntimeError(f"a cluster process exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("a cluster process was not ready in 60 s")
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self._redis.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def cluster(
    backend: ScriptedBackend, redis_url: str, logs: Path, env: dict[str, str] | None = None
) -> Iterator[Cluster]:
    """Processes against one Redis; `env`: settings every one of them gets."""
    running = Cluster(backend, redis_url, logs, env)
    try:
        yield running
    finally:
        running.stop()
