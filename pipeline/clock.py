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
    factor: float  # simulated seconds per real second: 1 unless accelerated

    def now(self) -> datetime: ...

    def real_seconds_until(self, moment: datetime) -> float:
        """How long to wait, in real seconds, until the clock reads ``moment`` (0 if it has)."""
        ...


class SystemClock:
    factor = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def real_seconds_until(self, moment: datetime) -> float:
        return max(0.0, (moment - self.now()).total_seconds())


class AcceleratedClock:
    """Simulated time: ``start`` at the wall-clock instant ``epoch``, running ``factor`` times
    faster than real time from then on.

    Anchored to the wall clock (not to when this object was made) so that every process given
    the same start, factor and epoch reads the same simulated time: the worker, the senders, the
    simulator and a test all agree on what "now" is.
    """

    def __init__(
        self,
        start: datetime,
        factor: float,
        epoch: float | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("AcceleratedClock needs a timezone-aware start instant")
        if factor <= 0:
            raise ValueError(f"AcceleratedClock factor must be positive, got {factor}")
        self.start = start.astimezone(UTC)
        self.factor = factor
        self._wall = wall
        self.epoch = wall() if epoch is None else epoch

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(self._wall() - self.epoch) * self.factor)

    def real_seconds_until(self, moment: datetime) -> float:
        return max(0.0, (moment - self.now()).total_seconds() / self.factor)


class ManualClock:
    """A clock that moves only when told to; for tests."""

    factor = 1.0

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

    def real_seconds_until(self, moment: datetime) -> float:
        return 0.0  # it only moves when told; waiting would never end
