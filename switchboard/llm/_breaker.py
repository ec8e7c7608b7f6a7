"""A circuit breaker per backend: stop sending calls to a backend that keeps failing."""

from __future__ import annotations

import time
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after `threshold` consecutive failed calls; after `reset_after` seconds lets one
    trial call through (half-open); that call's success closes it, its failure opens it again.

    Single event loop, no awaits inside: no lock needed.
    """

    def __init__(self, threshold: int, reset_after: float) -> None:
        self._threshold = threshold
        self._reset_after = reset_after
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if time.monotonic() - self._opened_at >= self._reset_after:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def try_acquire(self) -> bool:
        """Whether a call may go to this backend now (claims the single half-open trial)."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._trial_in_flight = False
        if self._opened_at is not None:
            self._opened_at = time.monotonic()  # a failed trial: open for another period
            return
        self._failures += 1
        if self._failures >= self._threshold:
            self._opened_at = time.monotonic()

    def release(self) -> None:
        """Give back a claimed trial without a verdict (the caller went away)."""
        self._trial_in_flight = False
