"""The demo's live view: the simulated clock, events produced, and how touchpoints ended."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import TextIO

from pipeline.clock import AcceleratedClock
from pipeline.demo.watch import Tally
from pipeline.progress import Progress
from pipeline.simulate.population import Plan, SimEvent

_JOURNEY_COLUMNS = ("dispatched", "delivered", "failed", "suppressed", "expired")
_JOURNEY_ROW = "{:>10}  {:>9}  {:>6}  {:>10}  {:>7}"


class Display:
    """The live view: the simulated clock, events produced, touchpoints and how they ended, and
    on a terminal one row per journey (a log gets one summary line every few seconds)."""

    def __init__(
        self,
        stream: TextIO,
        plan: Plan,
        events: int,
        tally: Tally,
        clock: AcceleratedClock,
        scheduled: Mapping[str, int],
    ) -> None:
        self.progress = Progress(stream)
        self.plan = plan
        self.tally = tally
        self.clock = clock
        self.scheduled = scheduled
        self.phase = "simulating"
        self.produced = 0
        self.closed = False
        self.progress.line("clock", "")  # first row
        self.hours = self.progress.bar("simulated hours", total=round(plan.days * 24))
        self.events = self.progress.bar("events produced", total=events)
        self.dispatched = self.progress.bar("dispatched")
        self.delivered = self.progress.bar("delivered")
        self.failed = self.progress.bar("failed")
        self.suppressed = self.progress.bar("suppressed")
        self.expired = self.progress.bar("expired")

    def sent(self, event: SimEvent) -> None:
        self.produced += 1

    async def run(self) -> None:
        while not self.closed:
            self.render()
            await asyncio.sleep(0.2)

    def close(self) -> None:
        """Draw the final state; the view changes no more."""
        if not self.closed:
            self.update()
            self.closed = True
            self.progress.close()

    def render(self, force: bool = False) -> None:
        if not self.closed:
            self.update()
            self.progress.render(force=force)

    def update(self) -> None:
        now = self.clock.now()
        elapsed = (now - self.plan.start).total_seconds() / 86400.0
        day = min(max(elapsed, 0.0), self.plan.days)
        if elapsed < 0:
            state = f"starts in {-elapsed * 86400 / self.clock.factor:.0f} s"
        else:
            state = f"day {min(int(day) + 1, math.ceil(self.plan.days))} of {self.plan.days:g}"
        self.progress.line("clock", f"{now:%a %Y-%m-%d %H:%M} UTC, {state} ({self.phase})")
        self.hours.set(int(day * 24))
        self.events.set(self.produced)
        counting = self.tally.counting
        journeys = counting.by_journey()
        totals = counting.total()
        self.dispatched.set(totals.dispatched)
        self.delivered.set(totals.delivered)
        self.failed.set(totals.failed)
        self.suppressed.set(totals.suppressed)
        self.expired.set(totals.expired)
        self.progress.line(
            "in flight",
            f"{totals.in_flight} dispatched, no outcome yet; "
            f"{self.scheduled.get('customers', 0)} customers with a touchpoint scheduled",
        )
        if self.progress.tty and journeys:
            self.progress.line("by journey", _JOURNEY_ROW.format(*_JOURNEY_COLUMNS))
            for name, counts in journeys.items():
                # Indented: a journey may share a name with a row above ("delivered").
                self.progress.line(
                    f"  {name}",
                    _JOURNEY_ROW.format(
                        counts.dispatched,
                        counts.delivered,
                        counts.failed,
                        counts.suppressed,
                        counts.expired,
                    ),
                )
