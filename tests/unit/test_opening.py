"""A dependency opened in the background: starting, then up or off, and waiters released."""

from __future__ import annotations

import asyncio

import pytest

from switchboard.errors import SwitchboardError
from switchboard.opening import Opening


async def test_waiters_get_the_value_once_it_opens() -> None:
    opening: Opening[str] = Opening("store")
    gate = asyncio.Event()

    async def opener() -> str:
        await gate.wait()
        return "open store"

    settling = asyncio.create_task(opening.settle(opener()))
    waiter = asyncio.create_task(opening.wait())
    await asyncio.sleep(0)
    assert opening.state == "starting" and opening.current is None and not waiter.done()
    gate.set()
    await settling
    assert await waiter == "open store"
    assert opening.state == "up" and opening.current == "open store" and opening.error is None


async def test_a_failed_opening_is_off_with_its_reason() -> None:
    opening: Opening[str] = Opening("graph")

    async def opener() -> str:
        raise SwitchboardError("Neo4j did not start")

    await opening.settle(opener())
    assert opening.state == "off" and opening.error == "Neo4j did not start"
    assert await opening.wait() is None


async def test_shutdown_while_starting_releases_waiters() -> None:
    opening: Opening[str] = Opening("graph")
    settling = asyncio.create_task(opening.settle(asyncio.Event().wait()))  # type: ignore[arg-type]
    waiter = asyncio.create_task(opening.wait())
    await asyncio.sleep(0)
    settling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await settling
    assert await waiter is None
    assert opening.state == "off" and "stopped" in (opening.error or "")
