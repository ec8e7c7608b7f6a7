"""Runs the real Switchboard app on a real uvicorn server on a loopback port, in a thread with
its own event loop: for the service tests and for `switchboard eval`, which drive it over HTTP
as any client would."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from api.app import create_app
from switchboard.settings import Settings


def _starting(url: str) -> bool:
    ready = httpx.get(f"{url}/readyz", timeout=10).json()
    return any(ready[part]["status"] == "starting" for part in ("retrieval", "graph"))


@contextmanager
def running_service(
    settings: Settings, startup_timeout: float = 150.0, settled: bool = True
) -> Iterator[str]:
    """Serve `create_app(settings)` and yield its base URL; shut it down (lifespan included)
    on exit. With `settled`, wait until the dependencies that open after start-up (document
    store, knowledge graph) are up or off, so a caller sees one state, not a race."""
    # The port is bound here and held until uvicorn listens on it: uvicorn binds only after the
    # lifespan's start-up (seconds, while the stores start), and a port merely found free before
    # then can meanwhile become a connection's local port ("address already in use" in CI).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        loop="asyncio",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    url = f"http://127.0.0.1:{port}"
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the service failed to start")
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not start in time")
            time.sleep(0.02)
        while settled and _starting(url):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service's dependencies did not settle in time: {url}")
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()
