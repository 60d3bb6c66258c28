"""What to simulate (:class:`Plan`), what comes out (:class:`SimEvent`), and the run's time: when
customers arrive, working days, local times."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.journeys.holdout import Holdouts
from pipeline.names import TopicRole

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MILLISECOND = timedelta(milliseconds=1)

TAIL_DAYS = 35.0  # a customer's month after delivery, kept inside the run when it is long enough
MAX_DAYS = 3650.0  # the beats' 40 bits of milliseconds hold 34 years; ten are plenty


@dataclass(frozen=True)
class Plan:
    """What to simulate: this many customers, for this many days from ``start``, from ``seed``."""

    customers: int = 400
    days: float = 45.0
    seed: int = 42
    start: datetime = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    # Who does not get which journey: pass the journeys file's, so the world reacts only to the
    # messages that are sent. The default holds nobody out.
    holdouts: Holdouts = field(default_factory=Holdouts)

    def __post_init__(self) -> None:
        if self.customers < 0:
            raise ValueError(f"a plan needs 0 or more customers, not {self.customers}")
        if not 0 < self.days <= MAX_DAYS:
            raise ValueError(
                f"a plan spans more than 0 and at most {MAX_DAYS:g} days, not {self.days}"
            )
        if self.start.tzinfo is None:
            raise ValueError("a plan's start must be timezone-aware (add Z or +00:00)")

    @property
    def end(self) -> datetime:
        """The first instant after the run: every event is before it."""
        return self.start + timedelta(days=self.days)


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One input event: the Avro ``record`` for the topic of ``role``, which happens ``at``."""

    at: datetime  # the record's occurred_at (aware, UTC, whole milliseconds)
    role: TopicRole  # PURCHASES, SHIPMENTS, APP_USAGE or PREFERENCES
    record: dict[str, Any]  # ready for SchemaSet.encode(RECORD_OF_TOPIC[role], record)

    @property
    def customer_id(self) -> str:
        return str(self.record["customer_id"])


# -- time --------------------------------------------------------------------------------------


def _origin(plan: Plan) -> datetime:
    """The plan's start in UTC, rounded up to a whole millisecond (what Avro carries)."""
    start = plan.start.astimezone(UTC)
    extra = start.microsecond % 1000
    return start + timedelta(microseconds=1000 - extra) if extra else start


def _end_ms(plan: Plan, origin: datetime) -> int:
    """Milliseconds from ``origin`` to the end of the run: beats must come before it."""
    return -(-(plan.end - origin) // MILLISECOND)


def _arrival_span_ms(plan: Plan, end_ms: int) -> int:
    """Customers arrive over all but the run's last 35 days, and at least its first fifth."""
    days = min(plan.days, max(plan.days - TAIL_DAYS, plan.days * 0.22))
    return max(1, min(end_ms, int(days * 86_400_000)))


def _arrivals(plan: Plan, end_ms: int) -> Iterator[tuple[int, int]]:
    """(customer index, arrival in ms from the origin), in order, uniform over the arrival span.

    The sorted uniform sample is drawn one point at a time (each point is the minimum of the
    points still to come), so a million arrivals need no list and no sort.
    """
    rng = random.Random(f"aftercare-simulate:{plan.seed}:arrivals")
    span = _arrival_span_ms(plan, end_ms)
    u = 0.0
    for index in range(plan.customers):
        u += (1.0 - u) * (1.0 - rng.random() ** (1.0 / (plan.customers - index)))
        yield index, min(int(u * span), span - 1)


def _working_day(day: date, days: int) -> date:
    """``days`` delivery days after ``day`` (carriers do not deliver on Sundays)."""
    for _ in range(days):
        day += DAY
        while day.weekday() == 6:
            day += DAY
    return day


def _local(day: date, minutes: float, zone: ZoneInfo) -> datetime:
    """``minutes`` after local midnight of ``day`` in ``zone``, as UTC."""
    wall = datetime.combine(day, time(0), tzinfo=zone) + timedelta(minutes=minutes)
    return wall.astimezone(UTC)


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
