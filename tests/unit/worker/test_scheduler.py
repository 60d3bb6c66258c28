"""The due index: what is due, once, re-sent if nobody acted on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.worker.scheduler import NO_WAKE, DueIndex, pack, unpack_state, unpack_wake

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
