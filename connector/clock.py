"""One clock for the whole connector: the Store, the runtime, the breaker and the pipeline ask it
for the time, so tests move time instead of sleeping.

`now()` is aware UTC wall time (what is stored and shown); `monotonic()` measures intervals
(rate budgets, durations, stalls) and never jumps when the machine's clock is stepped.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC wall-clock time."""

    def monotonic(self) -> float:
        """Seconds on a clock that only moves forward."""


class SystemClock:
    """The machine's clocks."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock a test moves by hand: `advance(seconds)` moves both readings together."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
        self._mono = 1_000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def set(self, moment: datetime) -> None:
        """Jump to `moment` (forward or back; the monotonic reading moves forward only)."""
        self._mono += max(0.0, (moment - self._now).total_seconds())
        self._now = moment


class OffsetClock(SystemClock):
    """The machine's clock moved by a settable offset: tests jump past a retry backoff or a
    timed hold without sleeping, while everything else still runs in real time."""

    def __init__(self, offset_seconds: float = 0.0):
        self.offset = offset_seconds

    def now(self) -> datetime:
        return super().now() + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return super().monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


SYSTEM = SystemClock()


def utcnow() -> datetime:
    """The system clock's aware UTC time, for code that has no injected clock (the CLI's views)."""
    return datetime.now(timezone.utc)
