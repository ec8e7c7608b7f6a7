"""Waiting out a Redis that stopped answering (a restart, a failover), for the writes whose loss
would lose a run's answer: a run's checkpoint, a run's end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def waiting_out(
    call: Callable[[], Awaitable[T]], errors: tuple[type[BaseException], ...], wait_s: float
) -> T:
    """`call()`, made again after 0.1, 0.2, 0.4 ... (at most 1) seconds while it raises one of
    `errors`, for up to `wait_s` seconds; then its last error. `call` must be safe to repeat."""
    deadline = time.monotonic() + wait_s
    delay = 0.1
    while True:
        try:
            return await call()
        except errors:
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
