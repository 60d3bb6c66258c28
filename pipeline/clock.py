"""The clock, injected everywhere it is needed.

Journeys span weeks, so nothing in Aftercare reads the wall clock directly: the worker, the senders
and the intake ask a :class:`Clock`. Production passes :class:`SystemClock`; the demo and backfills
pass :class:`AcceleratedClock` (a simulated month in minutes); tests pass :class:`ManualClock` and
call ``advance``. All readings are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class AcceleratedClock:
    """Simulated time that starts at ``start`` and runs ``factor`` times faster than real time."""

    def __init__(
        self,
        start: datetime,
        factor: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("AcceleratedClock needs a timezone-aware start instant")
        if factor <= 0:
            raise ValueError(f"AcceleratedClock factor must be positive, got {factor}")
        self.start = start.astimezone(UTC)
        self.factor = factor
        self._monotonic = monotonic
        self._origin = monotonic()

    def now(self) -> datetime:
        elapsed = (self._monotonic() - self._origin) * self.factor
        return self.start + timedelta(seconds=elapsed)

    def real_seconds_until(self, moment: datetime) -> float:
        """How long to wait in real time until the simulated clock reads ``moment``."""
        return max(0.0, (moment - self.now()).total_seconds() / self.factor)


class ManualClock:
    """A clock that moves only when told to; for tests."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start instant")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("a clock does not go backwards")
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> None:
        if moment < self._now:
            raise ValueError("a clock does not go backwards")
        self._now = moment
