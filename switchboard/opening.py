"""A dependency that opens in the background after the service is up.

The document store (qdrant-client takes about a second to import) and the knowledge graph (the
embedded Neo4j takes several seconds to start) are optional: chat works without them, and
`/readyz` reports them without being held back by them. So they open after start-up, and each is
an `Opening`: `/readyz` shows it `starting`, then `up` or `off` (with the reason), and work that
needs it waits for it with `wait()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Generic, Literal, TypeVar

from switchboard.errors import SwitchboardError

T = TypeVar("T")

State = Literal["starting", "up", "off"]

log = logging.getLogger(__name__)


class Opening(Generic[T]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._value: T | None = None
        self._error: str | None = None
        self._settled = asyncio.Event()

    @property
    def state(self) -> State:
        if not self._settled.is_set():
            return "starting"
        return "up" if self._value is not None else "off"

    @property
    def error(self) -> str | None:
        """Why it is off; None while starting or once up."""
        return self._error

    @property
    def current(self) -> T | None:
        """The dependency if it is up now; never waits."""
        return self._value

    def open(self, value: T) -> None:
        """It is up; also after `fail`, when a later attempt succeeded."""
        self._value = value
        self._error = None
        self._settled.set()

    def fail(self, error: str) -> None:
        self._error = error
        self._settled.set()

    async def wait(self) -> T | None:
        """The dependency once it has opened, or None if it could not."""
        await self._settled.wait()
        return self._value

    async def settle(self, opener: Awaitable[T]) -> None:
        """Run `opener` and record what it gave; an exception turns the dependency off (logged).
        Cancellation (shutdown while starting) leaves it off too, so nothing waits forever."""
        try:
            value = await opener
        except asyncio.CancelledError:
            self.fail("the service stopped while it was starting")
            raise
        except SwitchboardError as exc:
            log.error("%s is off: %s", self.name, exc.message)
            self.fail(exc.message)
        except Exception as exc:  # a bug, not a store that is down: logged with its traceback
            log.exception("%s is off", self.name)
            self.fail(f"{type(exc).__name__}: {exc}")
        else:
            self.open(value)
