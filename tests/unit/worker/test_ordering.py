"""Event-time order across a partition number's inputs: lowest occurred_at first, bounded waits."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.worker.app import LAGGING_WAIT_SECONDS
from pipeline.worker.ordering import UNKNOWN_TIME, EventTimeOrder

TOPICS = ["preferences", "purchases", "shipments", "app-usage", "due-notices"]


def _order(max_idle: float = 0.0) -> EventTimeOrder[str]:
    """No wait unless a test asks for one: most tests are about the order alone."""
    return EventTimeOrder(TOPICS, max_idle)


def test_the_lowest_event_time_goes_first_whatever_the_arrival_order() -> None:
    order = _order()
    order.add("shipments", 0, 2_000, "shipped")  # read first, happened second
    order.add("purchases", 0, 1_000, "placed")
    assert order.release(0.0) == ["placed", "shipped"]


def test_on_a_tie_preferences_come_first() -> None:
    order = _order()
    order.add("purchases", 3, 1_000, "payment failed")
    order.add("preferences", 3, 1_000, "sms consent")
    assert order.release(0.0) == ["sms consent", "payment failed"]


def test_partitions_are_ordered_each_on_its_own() -> None:
    order = _order()
    order.add("shipments", 1, 5, "p1 late")
    order.add("purchases", 0, 9, "p0")
    order.add("purchases", 1, 1, "p1 early")
    released = order.release(0.0)
    assert released.index("p1 early") < released.index("p1 late")
    assert sorted(released) == ["p0", "p1 early", "p1 late"]


def test_a_record_of_unknown_time_goes_at_once() -> None:
    order = _order()
    order.add("purchases", 0, 5_000, "event")
    order.add("shipments", 0, UNKNOWN_TIME, "garbage")
    assert order.release(0.0) == ["garbage", "event"]


def _full(order: EventTimeOrder[str], partition: int = 0) -> None:
    """Something buffered on every input of ``partition``, at a late time."""
    for topic in TOPICS:
        order.add(topic, partition, 10**9, f"later {topic}")


def test_the_group_waits_for_an_empty_input_up_to_the_bound_then_goes_on() -> None:
    order = _order(max_idle=0.1)
    order.add("shipments", 0, 2_000, "shipped")

    assert order.release(10.00) == []  # the other inputs are empty: wait
    assert order.waiting()
    assert order.next_deadline(10.02) == pytest.approx(0.08)
    order.add("purchases", 0, 1_000, "placed")  # it came within the bound
    assert order.release(10.05) == []  # still waiting for the rest
    assert order.release(10.11) == ["placed", "shipped"]  # the bound passed: go on
    assert not order.waiting()
    assert order.next_deadline(10.11) is None


def test_with_every_input_buffered_nothing_waits() -> None:
    order = _order(max_idle=0.1)
    order.add("shipments", 0, 2_000, "shipped")
    order.add("purchases", 0, 1_000, "placed")
    _full(order)
    released = order.release(0.0)
    assert released[:2] == ["placed", "shipped"]  # then the later ones, until one input empties


def test_past_the_bound_a_group_goes_on_until_it_is_empty_then_waits_anew() -> None:
    order = _order(max_idle=0.1)
    order.add("shipments", 0, 2_000, "shipped")
    assert order.release(0.0) == []
    assert order.release(0.1) == ["shipped"]
    order.add("shipments", 0, 3_000, "delivered")  # the group was empty: a new wait
    assert order.release(0.15) == []
    assert order.release(0.26) == ["delivered"]


def test_a_revoked_partition_forgets_what_it_held() -> None:
    order = _order()
    order.add("shipments", 0, 2_000, "shipped")
    order.add("purchases", 0, 1_000, "placed")
    order.drop([("shipments", 0)])
    assert order.release(0.0) == ["placed"]
    assert len(order) == 0


def test_within_a_topic_the_offset_order_stays_even_if_times_go_back() -> None:
    order = _order()
    order.add("purchases", 0, 2_000, "first offset")
    order.add("purchases", 0, 1_000, "second offset, earlier time")
    assert order.release(0.0) == ["first offset", "second offset, earlier time"]


@given(
    st.dictionaries(
        st.sampled_from(TOPICS),
        st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
        min_size=1,
    ),
    st.randoms(use_true_random=False),
)
def test_inputs_each_in_time_order_come_out_as_one_sorted_sequence(
    times: dict[str, list[int]], random: Random
) -> None:
    # Each topic's records are in event-time order (as one producer writes them), and they
    # arrive interleaved in any order: what comes out is the merge by (time, topic order).
    per_topic = {topic: sorted(values) for topic, values in times.items()}
    arrivals = [(topic, i) for topic, values in per_topic.items() for i in range(len(values))]
    random.shuffle(arrivals)
    arrivals.sort(key=lambda a: (a[0], a[1]))  # keep each topic's own order...
    interleaved: list[tuple[str, int]] = []
    queues = {t: [a for a in arrivals if a[0] == t] for t in per_topic}
    while any(queues.values()):  # ...and interleave the topics at random
        topic = random.choice([t for t, q in queues.items() if q])
        interleaved.append(queues[topic].pop(0))

    order = _order()
    for topic, i in interleaved:
        order.add(topic, 0, per_topic[topic][i], (per_topic[topic][i], TOPICS.index(topic), i))
    released = order.release(0.0)

    assert released == sorted(released)
    assert len(released) == sum(len(v) for v in per_topic.values())


def test_with_no_idle_bound_only_inputs_with_records_on_the_broker_are_waited_for() -> None:
    behind: set[tuple[str, int]] = {("shipments", 0)}  # records on the broker not yet fetched
    order = EventTimeOrder(TOPICS, 0.0, caught_up=lambda t, p: (t, p) not in behind)
    order.add("purchases", 0, 1_000, "placed")
    assert order.release(0.0) == []  # shipments of partition 0 still has records to come
    assert order.next_deadline(0.0) == pytest.approx(0.5)
    behind.clear()  # the consumer caught up with shipments: nothing else can come first
    assert order.release(0.01) == ["placed"]

    order.add("purchases", 1, 1_000, "placed on 1")  # partition 1: every other input caught up
    assert order.release(0.02) == ["placed on 1"]


def test_an_input_behind_is_waited_for_longer_than_the_idle_bound() -> None:
    order = EventTimeOrder(TOPICS, 0.1, caught_up=lambda t, p: t != "shipments", behind_bound=0.5)
    order.add("purchases", 0, 1_000, "placed")
    assert order.release(0.0) == []
    assert order.release(0.2) == []  # past max_idle, but shipments has records on their way
    assert order.release(0.5) == ["placed"]  # past the bound for inputs behind: go on


def test_the_worker_waits_for_an_input_behind_for_seconds_not_a_moment() -> None:
    # After a restart on a busy machine one input's first fetch can come a second or more after
    # the others'; what happened first must still be decided first.
    behind = {("preferences", 0), ("preferences", 1)}  # records on the broker not yet fetched
    order = EventTimeOrder(
        TOPICS,
        0.1,
        caught_up=lambda t, p: (t, p) not in behind,
        behind_bound=LAGGING_WAIT_SECONDS,
    )
    order.add("purchases", 0, 2_000, "payment failed")
    assert order.release(0.0) == []
    assert order.release(5.0) == []  # preferences of partition 0 is still being fetched
    order.add("preferences", 0, 1_000, "sms consent")
    behind.discard(("preferences", 0))
    assert order.release(5.1) == ["sms consent", "payment failed"]

    order.add("purchases", 1, 3_000, "placed")  # an input that cannot be read: not for ever
    assert order.release(6.0) == []
    assert order.release(6.0 + LAGGING_WAIT_SECONDS - 0.1) == []
    assert order.release(6.0 + LAGGING_WAIT_SECONDS) == ["placed"]
