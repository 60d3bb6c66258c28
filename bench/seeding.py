"""Customers with pending touchpoints, written straight into the worker's table changelog.

A worker that starts on a changelog recovers its table from it, exactly as after a move to another
machine; so a million customers, each waiting for a touchpoint, cost one pass of writing records
instead of a million events through the worker.

Every value is what the worker itself would have stored: the journey engine decides a template
customer's preferences and ORDER_PLACED, ``encode_state`` and ``pack`` turn the state into
the table value. The ORDER_PLACED confirmation goes out at once; what stays pending is each later
step (with the default journeys, ``not_shipped_watchdog``, due 48 h after the order). Customers are
made in groups that share a due time; within a group only the customer id (and the touchpoint ids
that hash it) differ, so each customer's value is the group's template with those strings
replaced. Before anything is written, sample customers of every group are checked byte for byte
against a full run of the engine for them; if the codec or the engine ever stops allowing the
shortcut, every customer is made by the engine instead (slower, same bytes).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic
from aiokafka.partitioner import murmur2

from bench.compat import load_journeys, pack
from bench.population import _placed, _prefs
from pipeline.config import Settings
from pipeline.intake import Admitted, SourceRecord
from pipeline.journeys.engine import JourneyEngine, touchpoint_id
from pipeline.journeys.model import CustomerState, Event
from pipeline.names import CUSTOMERS_TABLE, RECORD_OF_TOPIC, TopicRole
from pipeline.topics import admin_client
from pipeline.worker.convert import to_event
from pipeline.worker.statecodec import encode_state

TEMPLATE = "cust-XXXXXXX"  # as long as every customer id made here: cust-0000000 ...
BATCH_BYTES = 512 * 1024  # under the broker's default message.max.bytes
IN_FLIGHT_BATCHES = 64


def customer_id(number: int) -> str:
    return f"cust-{number:07d}"


def changelog_topic(settings: Settings) -> str:
    """The customers table's changelog, as Faust names it: ``<worker id>-<table>-changelog``."""
    return f"{settings.worker_id}-{CUSTOMERS_TABLE}-changelog"


async def create_changelog(settings: Settings, partitions: int) -> str:
    """Create the changelog topic as Faust would (compacted, one partition per table partition)."""
    topic = changelog_topic(settings)
    admin = admin_client(settings)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topic,
                    partitions,
                    settings.replication_factor,
                    topic_configs={"cleanup.policy": "compact"},
                )
            ]
        )
        # Until the broker has elected leaders, a producer logs errors and retries.
        async with asyncio.timeout(30.0):
            while True:
                (described,) = await admin.describe_topics([topic])
                found = described.get("partitions") or []
                if len(found) == partitions and all(p.get("leader", -1) >= 0 for p in found):
                    break
                await asyncio.sleep(0.1)
    finally:
        await admin.close()
    return topic


class StateMaker:
    """Table values of customers with pending touchpoints, as the worker would store them."""

    def __init__(self) -> None:
        self.engine = JourneyEngine(load_journeys())
        probe = self.state(TEMPLATE, datetime.fromtimestamp(1_800_000_000, tz=UTC))
        if not probe.pending:
            raise RuntimeError(
                "the journeys leave nothing pending after ORDER_PLACED: no timers to benchmark"
            )
        self.pending_per_customer = len(probe.pending)
        # How long after the order its first pending touchpoint is due (48 h by default).
        self.delay = min(p.not_before for p in probe.pending) - self._ordered_at(probe)
        self.shortcut = True

    @staticmethod
    def _ordered_at(state: CustomerState) -> datetime:
        placed = state.orders[0].placed_at
        assert placed is not None
        return placed

    def events(self, customer: str, ordered_at: datetime) -> list[Event]:
        # The same random draws for every customer, only the id tells them apart; an order of
        # two line items, the mean of bench.population's.
        records = [
            (TopicRole.PREFERENCES, _prefs(customer, ordered_at - timedelta(minutes=5), _rng(1))),
            (TopicRole.PURCHASES, _placed(customer, f"order-{customer}", ordered_at, _rng(0))),
        ]
        events = []
        for role, record in records:
            source = SourceRecord(role.value, 0, 0, customer.encode(), b"")
            admitted = Admitted(role, RECORD_OF_TOPIC[role], record, source)
            events.append(to_event(admitted, record["occurred_at"]))
        return events

    def state(self, customer: str, ordered_at: datetime) -> CustomerState:
        state: CustomerState | None = None
        for event in self.events(customer, ordered_at):
            state = self.engine.decide(state, event, event.occurred_at).state
        assert state is not None
        return state

    def value(self, customer: str, due: datetime) -> bytes:
        """The table value of ``customer`` whose first pending touchpoint is due at ``due``,
        by a full run of the engine."""
        state = self.state(customer, due - self.delay)
        return pack(self.engine.next_wakeup(state), encode_state(state))

    def group(self, due: datetime) -> Group:
        return Group(self, due)


@dataclass(frozen=True)
class _Touchpoint:
    template_id: bytes
    scope: str
    journey: str
    step: str
    due: datetime


class Group:
    """Customers whose first pending touchpoint is due at the same instant."""

    def __init__(self, maker: StateMaker, due: datetime) -> None:
        self.maker = maker
        self.due = due
        state = maker.state(TEMPLATE, due - maker.delay)
        self.template = pack(maker.engine.next_wakeup(state), encode_state(state))
        self.touchpoints: list[_Touchpoint] = []
        started = [scope for order in state.orders for scope in order.started]
        for pending in state.pending:
            tp = pending.touchpoint
            # The touchpoint id hashes the customer id with the journey's scope key, which for
            # an order-scoped journey is recorded among the order's started journeys.
            scope = next(
                (
                    s
                    for s in started
                    if s.startswith(f"{tp.journey}/")
                    and touchpoint_id(TEMPLATE, s, tp.journey, tp.step, tp.due_at)
                    == tp.touchpoint_id
                ),
                None,
            )
            if scope is None or TEMPLATE.encode() not in self.template:
                maker.shortcut = False
                return
            self.touchpoints.append(
                _Touchpoint(tp.touchpoint_id.encode(), scope, tp.journey, tp.step, tp.due_at)
            )

    def value(self, customer: str) -> bytes:
        if not self.maker.shortcut:
            return self.maker.value(customer, self.due)
        value = self.template.replace(TEMPLATE.encode(), customer.encode())
        for tp in self.touchpoints:
            scope = tp.scope.replace(TEMPLATE, customer)
            real = touchpoint_id(customer, scope, tp.journey, tp.step, tp.due)
            value = value.replace(tp.template_id, real.encode())
        return value

    def check(self, customers: Sequence[str]) -> None:
        """Compare the shortcut with the engine for ``customers``; turn it off on a difference."""
        for customer in customers:
            if self.maker.shortcut and self.value(customer) != self.maker.value(customer, self.due):
                self.maker.shortcut = False


@dataclass(frozen=True)
class Plan:
    """Customers numbered ``first`` onwards, in groups: (due time, how many)."""

    first: int
    groups: tuple[tuple[datetime, int], ...]

    @property
    def customers(self) -> int:
        return sum(count for _, count in self.groups)

    def numbered(self) -> Iterator[tuple[datetime, range]]:
        number = self.first
        for due, count in self.groups:
            yield due, range(number, number + count)
            number += count


def spread(first: int, customers: int, start: datetime, end: datetime, groups: int) -> Plan:
    """``customers`` due at ``groups`` instants spread evenly over [start, end]."""
    groups = max(min(groups, customers), 1)
    # Whole seconds, as upstream event times (Avro timestamp-millis) would be, not microseconds.
    start = start.replace(microsecond=0)
    step = timedelta(seconds=(end - start).total_seconds() // max(groups - 1, 1))
    sizes = [customers // groups + (1 if g < customers % groups else 0) for g in range(groups)]
    return Plan(first, tuple((start + step * g, size) for g, size in enumerate(sizes) if size))


def values(maker: StateMaker, plan: Plan, rng: random.Random) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of every customer of ``plan``, after checking the shortcut on samples."""
    groups = [(maker.group(due), numbers) for due, numbers in plan.numbered()]
    for group, numbers in groups:
        samples = {numbers[0], numbers[-1], rng.choice(numbers)}
        group.check([customer_id(n) for n in sorted(samples)])
    for group, numbers in groups:
        for number in numbers:
            customer = customer_id(number)
            yield customer.encode(), group.value(customer)


async def write(
    settings: Settings, topic: str, partitions: int, records: Iterable[tuple[bytes, bytes]]
) -> tuple[int, int]:
    """Produce ``records`` to ``topic``, each to its key's partition as the default partitioner
    places it (so the customer's state sits where its events arrive); (records, value bytes)."""
    producer = AIOKafkaProducer(
        acks=1, linger_ms=20, max_batch_size=BATCH_BYTES, **settings.kafka_client_kwargs()
    )
    await producer.start()
    count = size = 0
    in_flight: list[asyncio.Future[Any]] = []
    batches = {p: producer.create_batch() for p in range(partitions)}
    filled = dict.fromkeys(batches, 0)

    async def submit(partition: int) -> None:
        in_flight.append(await producer.send_batch(batches[partition], topic, partition=partition))
        batches[partition] = producer.create_batch()
        filled[partition] = 0
        if len(in_flight) >= IN_FLIGHT_BATCHES:
            await in_flight.pop(0)

    try:
        for key, value in records:
            partition = (murmur2(key) & 0x7FFFFFFF) % partitions
            if batches[partition].append(key=key, value=value, timestamp=None) is None:
                await submit(partition)
                batches[partition].append(key=key, value=value, timestamp=None)
            filled[partition] += 1
            count += 1
            size += len(value)
            if count % 2000 == 0:
                await asyncio.sleep(0)  # let the producer's sender run
        for partition in range(partitions):
            if filled[partition]:
                await submit(partition)
        await asyncio.gather(*in_flight)
    finally:
        await producer.stop()
    return count, size


def _rng(seed: int) -> random.Random:
    return random.Random(seed)
