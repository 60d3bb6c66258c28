"""Durable timers: the due index and the loop that turns "due" into a due-notice.

What is due lives in the customers' table state (pending touchpoints, the app-quiet watch), so it
survives restarts and rebalances with the table's changelog. This module only keeps an in-memory
*index* of it for the partitions this worker actively owns: the next wake-up time per customer, in
a heap, so that finding what is due costs in proportion to what is due, never a scan of every
customer. The index is rebuilt from the table when partitions are assigned (after recovery), and
updated by the agent after every decision.

The loop (:class:`DueNotices`) does not touch the table: for each customer that is due it
publishes a DueNotice to the co-partitioned ``due-notices`` topic; the
agent consumes it in stream context, decides with a ``Wake`` and writes the state. A notice that
is lost (a crash between send and processing) is re-sent: the entry stays in flight until the
agent reports the customer's new wake-up, and a notice in flight too long is sent again.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from pipeline.clock import Clock
from pipeline.worker.statecodec import NO_WAKE

log = logging.getLogger(__name__)


class DueIndex:
    """The next wake-up (UTC millis) of each customer on this worker's active partitions."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._heap: list[tuple[int, str]] = []
        self._wake: dict[str, int] = {}  # customer -> wake millis, the truth the heap lags behind
        self._partition: dict[str, int] = {}  # customer -> the partition holding its state
        self._in_flight: dict[str, float] = {}  # customer -> when its notice was sent (monotonic)
        self._monotonic = monotonic

    def __len__(self) -> int:
        return len(self._wake)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def clear(self) -> None:
        self._heap.clear()
        self._wake.clear()
        self._partition.clear()
        self._in_flight.clear()

    def rebuild(self, entries: Iterable[tuple[str, int, int]]) -> None:
        """Replace everything with ``(customer, wake millis, partition)`` from the table."""
        self.clear()
        for customer, wake, partition in entries:
            if wake != NO_WAKE:
                self._wake[customer] = wake
                self._partition[customer] = partition
        self._heap = [(wake, customer) for customer, wake in self._wake.items()]
        heapq.heapify(self._heap)

    def set(self, customer: str, wake: datetime | None, partition: int) -> None:
        """The agent decided for ``customer``: its next wake-up is ``wake`` (or nothing)."""
        self._in_flight.pop(customer, None)
        if wake is None:
            self._wake.pop(customer, None)
            self._partition.pop(customer, None)
            return
        self._partition[customer] = partition
        millis = int(wake.timestamp() * 1000)
        if self._wake.get(customer) == millis:
            return
        self._wake[customer] = millis
        heapq.heappush(self._heap, (millis, customer))

    def next_wake(self) -> datetime | None:
        self._discard_stale_tops()
        if not self._heap:
            return None
        return datetime.fromtimestamp(self._heap[0][0] / 1000, UTC)

    def take_due(
        self, now: datetime, resend_after: float, limit: int
    ) -> list[tuple[str, int, int]]:
        """``(customer, wake millis, partition)`` due at ``now`` and needing a notice: newly
        due, or in flight for longer than ``resend_after`` real seconds."""
        now_ms = int(now.timestamp() * 1000)
        real_now = self._monotonic()
        due: list[tuple[str, int, int]] = []
        for customer, sent in list(self._in_flight.items()):
            if len(due) >= limit:
                return due
            if real_now - sent >= resend_after and customer in self._wake:
                self._in_flight[customer] = real_now
                due.append((customer, self._wake[customer], self._partition[customer]))
        while len(due) < limit:
            self._discard_stale_tops()
            if not self._heap or self._heap[0][0] > now_ms:
                break
            wake, customer = heapq.heappop(self._heap)
            if customer in self._in_flight:
                continue
            self._in_flight[customer] = real_now
            due.append((customer, wake, self._partition[customer]))
        return due

    def _discard_stale_tops(self) -> None:
        # Entries whose customer has since got another wake-up (or none) are skipped lazily.
        while self._heap:
            wake, customer = self._heap[0]
            if self._wake.get(customer) == wake:
                return
            heapq.heappop(self._heap)


# -- the loop ------------------------------------------------------------------------------------

TICK_SECONDS = 0.05  # the longest the loop sleeps before looking at the index again
RESEND_AFTER_SECONDS = 30.0  # a due-notice not acted on by then is sent again
NOTICES_PER_TICK = 5000


def due_notice(customer: str, wake_ms: int) -> dict[str, Any]:
    """The DueNotice record for ``customer``'s wake-up at ``wake_ms`` (its ``occurred_at``,
    from which the worker measures how late the wake-up was)."""
    return {
        "event_id": f"due:{customer}:{wake_ms}",
        "customer_id": customer,
        "occurred_at": datetime.fromtimestamp(wake_ms / 1000, UTC),
    }


class DueNotices:
    """Sends a due-notice for every customer of ``index`` that comes due on ``clock``.

    ``send(customer, wake_ms, partition)`` publishes one (to the due-notice partition of the
    customer's state); ``paused()`` holds the loop while the worker rebalances or recovers (the
    index is being rebuilt); ``stopping()`` ends it. A round that fails (the broker away) is
    logged and the next round tries again: the notices it did not send are still due, and those
    sent but never acted on are sent again after ``resend_after`` real seconds.
    """

    def __init__(
        self,
        index: DueIndex,
        clock: Clock,
        send: Callable[[str, int, int], Awaitable[None]],
        *,
        paused: Callable[[], bool] = lambda: False,
        stopping: Callable[[], bool] = lambda: False,
        every_round: Callable[[], Awaitable[None]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        tick: float = TICK_SECONDS,
        resend_after: float = RESEND_AFTER_SECONDS,
        per_round: int = NOTICES_PER_TICK,
    ) -> None:
        self.index = index
        self.clock = clock
        self.send = send
        self.paused = paused
        self.stopping = stopping
        self.every_round = every_round
        self.sleep = sleep
        self.tick = tick
        self.resend_after = resend_after
        self.per_round = per_round

    async def run(self) -> None:
        while not self.stopping():
            if self.every_round is not None:
                await self.every_round()
            await self.sleep(self.pause())
            await self.round()

    def pause(self) -> float:
        """Real seconds until the next wake-up is due, at most one tick (and at least 1 ms)."""
        wake = self.index.next_wake()
        pause = self.tick if wake is None else self.clock.real_seconds_until(wake)
        return min(self.tick, max(pause, 0.001))

    async def round(self) -> int:
        """Send the notices due now; how many were sent (0 while paused or on a failure)."""
        if self.paused():
            return 0
        sent = 0
        try:
            for customer, wake_ms, partition in self.index.take_due(
                self.clock.now(), self.resend_after, self.per_round
            ):
                await self.send(customer, wake_ms, partition)
                sent += 1
        except Exception:  # the broker may be away for a while; an uncaught error ends the app
            log.exception("could not send due-notices; trying again")
        return sent
