"""The due index and the due-notice loop: what is due, once, re-sent if nobody acted on it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.clock import ManualClock
from pipeline.worker.scheduler import DueIndex, DueNotices, due_notice
from pipeline.worker.statecodec import NO_WAKE, pack, unpack_state, unpack_wake

T = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
MS = int(T.timestamp() * 1000)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_table_values_carry_the_wake_up_in_front_of_the_state() -> None:
    assert unpack_wake(pack(T, b"{}")) == MS
    assert unpack_state(pack(T, b'{"v":1}')) == b'{"v":1}'
    assert unpack_wake(pack(None, b"{}")) == NO_WAKE


def test_only_what_is_due_comes_out_earliest_first() -> None:
    index = DueIndex()
    index.set("late", T + timedelta(hours=2), 1)
    index.set("early", T + timedelta(hours=1), 0)
    index.set("none", None, 3)
    assert index.take_due(T, 30, 100) == []
    assert index.next_wake() == T + timedelta(hours=1)
    assert index.take_due(T + timedelta(hours=3), 30, 100) == [
        ("early", MS + 3_600_000, 0),
        ("late", MS + 7_200_000, 1),
    ]


def test_a_customer_is_noticed_once_until_the_agent_acts_then_again_if_it_never_does() -> None:
    clock = FakeMonotonic()
    index = DueIndex(monotonic=clock)
    index.set("c1", T, 2)
    assert index.take_due(T, 30, 100) == [("c1", MS, 2)]
    assert index.take_due(T + timedelta(hours=1), 30, 100) == []  # in flight
    clock.now += 31
    assert index.take_due(T + timedelta(hours=1), 30, 100) == [("c1", MS, 2)]  # lost? send again
    index.set("c1", T + timedelta(days=1), 2)  # the agent acted: next wake-up tomorrow
    clock.now += 31
    assert index.take_due(T + timedelta(hours=1), 30, 100) == []


def test_a_moved_wake_up_replaces_the_old_one() -> None:
    index = DueIndex()
    index.set("c1", T, 0)
    index.set("c1", T + timedelta(days=3), 0)
    assert index.take_due(T + timedelta(days=1), 30, 100) == []
    assert len(index) == 1


def test_rebuild_takes_the_table_as_the_truth() -> None:
    index = DueIndex()
    index.set("gone", T, 0)
    index.rebuild([("c1", MS, 4), ("c2", NO_WAKE, 5)])
    assert len(index) == 1
    assert index.take_due(T, 30, 100) == [("c1", MS, 4)]


def test_limit_caps_a_burst() -> None:
    index = DueIndex()
    for n in range(10):
        index.set(f"c{n}", T, 0)
    assert len(index.take_due(T, 30, 4)) == 4
    assert len(index.take_due(T, 30, 100)) == 6


# -- the due-notice loop, on a manual clock --------------------------------------------------------


class Outbox:
    """Takes notices like the worker's producer; refuses while ``away``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, int]] = []
        self.away = False

    async def __call__(self, customer: str, wake_ms: int, partition: int) -> None:
        if self.away:
            raise ConnectionError("the broker is away")
        self.sent.append((customer, wake_ms, partition))


class RealTimeClock(ManualClock):
    """A manual clock that says how long real time would take to reach a moment (factor 1)."""

    def real_seconds_until(self, moment: datetime) -> float:
        return max(0.0, (moment - self.now()).total_seconds())


def _loop(**kwargs: Any) -> tuple[DueNotices, DueIndex, ManualClock, Outbox, FakeMonotonic]:
    monotonic = FakeMonotonic()
    index = DueIndex(monotonic)
    clock = RealTimeClock(T)
    outbox = Outbox()
    return DueNotices(index, clock, outbox, **kwargs), index, clock, outbox, monotonic


async def test_a_wake_up_becomes_one_notice_when_the_clock_reaches_it() -> None:
    notices, index, clock, outbox, _ = _loop()
    index.set("ada", T + timedelta(days=1), 3)
    assert await notices.round() == 0  # not due yet
    clock.advance(timedelta(days=1))
    assert await notices.round() == 1
    assert outbox.sent == [("ada", MS + 86_400_000, 3)]
    assert await notices.round() == 0  # in flight: not sent again at once
    assert due_notice("ada", MS)["event_id"] == f"due:ada:{MS}"


async def test_a_notice_nobody_acted_on_is_sent_again() -> None:
    notices, index, _, outbox, monotonic = _loop(resend_after=30.0)
    index.set("ada", T, 0)
    await notices.round()
    monotonic.now += 29
    assert await notices.round() == 0
    monotonic.now += 2
    assert await notices.round() == 1
    assert [customer for customer, _, _ in outbox.sent] == ["ada", "ada"]


async def test_nothing_is_sent_while_paused_and_all_of_it_after() -> None:
    paused = {"now": True}
    notices, index, _, outbox, _ = _loop(paused=lambda: paused["now"])
    index.set("ada", T, 0)
    index.set("bob", T, 1)
    assert await notices.round() == 0
    paused["now"] = False
    assert await notices.round() == 2
    assert sorted(customer for customer, _, _ in outbox.sent) == ["ada", "bob"]


async def test_a_broker_away_costs_a_round_not_the_loop_and_the_notices_go_later() -> None:
    notices, index, _, outbox, monotonic = _loop(resend_after=30.0)
    index.set("ada", T, 0)
    outbox.away = True
    assert await notices.round() == 0  # logged, not raised
    outbox.away = False
    monotonic.now += 31
    assert await notices.round() == 1
    assert outbox.sent == [("ada", MS, 0)]


async def test_the_loop_sleeps_until_the_next_wake_up_at_most_a_tick_and_stops() -> None:
    slept: list[float] = []
    rounds = {"n": 0}

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        rounds["n"] += 1

    notices, index, clock, outbox, _ = _loop(
        sleep=sleep, tick=0.05, stopping=lambda: rounds["n"] >= 3
    )
    index.set("ada", T + timedelta(milliseconds=20), 0)
    assert notices.pause() == pytest.approx(0.02, abs=1e-5)
    clock.advance(timedelta(seconds=1))
    assert notices.pause() == 0.001  # overdue: at once (1 ms, never a busy loop)
    index.set("ada", None, 0)
    assert notices.pause() == 0.05  # nothing due: a tick
    await asyncio.wait_for(notices.run(), timeout=5)
    assert slept == [0.05, 0.05, 0.05]
    assert outbox.sent == []
