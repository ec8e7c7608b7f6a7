"""Child processes the embedded default runs beside the service (the llama.cpp server, Redis):
started on a loopback port, waited for, and stopped with the service."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from switchboard.errors import SwitchboardError

log = logging.getLogger(__name__)


class ProcessFailed(SwitchboardError):
    code = "process_failed"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ManagedProcess:
    """One child process; its output goes to `log_path`."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        log_path: Path,
        ready: Callable[[], Awaitable[bool]],
        startup_timeout: float,
        *,
        stdin_pipe: bool = False,
    ) -> None:
        self.name = name
        # A pipe the child can watch: it closes when this process dies, however it dies.
        self._stdin_pipe = stdin_pipe
        self._args = list(args)
        self._log_path = log_path
        self._ready = ready
        self._startup_timeout = startup_timeout
        self._process: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Start the process and return once `ready()` says so; raise `ProcessFailed` (naming
        the log file) if it exits or is not ready in time."""
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("ab") as log_file:
            self._process = await asyncio.create_subprocess_exec(
                *self._args,
                stdin=asyncio.subprocess.PIPE if self._stdin_pipe else asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
            )
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()  # never leave a half-started child behind
            raise

    async def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                raise ProcessFailed(
                    f"{self.name} exited with {self._process.returncode}; see {self._log_path}"
                )
            if await self._ready():
                log.info("%s ready", self.name)
                return
            await asyncio.sleep(0.05)
        raise ProcessFailed(
            f"{self.name} not ready after {self._startup_timeout:g}s; see {self._log_path}"
        )

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after five seconds; nothing if it is not running."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=5)
        except TimeoutError:
            process.kill()
            await process.wait()
