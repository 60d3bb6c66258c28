"""What the demo counts, and how it reads it: ``dispatch`` and ``deliveries`` from the broker.

:class:`Tally` is pure: it takes decoded ``TouchpointCommand`` and ``DeliveryOutcome`` records
and keeps, per journey, how many touchpoints were dispatched and how each ended, counting every
touchpoint once however often its record was written (at-least-once delivery means a record may
be written twice; the touchpoint id says it is the same one). :class:`Follower` feeds it from the
broker with one consumer outside any consumer group (it takes nothing from the pipeline's own
groups), from the offsets the run started at, so that a run counts only its own records.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.codec import DecodeError, SchemaSet
from pipeline.config import Settings
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.topics import admin_client

Offsets = dict[TopicPartition, int]
STATUSES = ("DELIVERED", "FAILED", "SUPPRESSED", "EXPIRED")


@dataclass
class JourneyCounts:
    """Touchpoints of one journey (or of all): dispatched to the senders, and how they ended.

    SUPPRESSED and EXPIRED touchpoints are often decided by the worker without a dispatch, so
    ``dispatched`` is not the sum of the outcomes.
    """

    dispatched: int = 0
    delivered: int = 0
    failed: int = 0
    suppressed: int = 0
    expired: int = 0

    @property
    def ended(self) -> int:
        return self.delivered + self.failed + self.suppressed + self.expired

    def add(self, other: JourneyCounts) -> None:
        self.dispatched += other.dispatched
        self.delivered += other.delivered
        self.failed += other.failed
        self.suppressed += other.suppressed
        self.expired += other.expired

    def as_json(self) -> dict[str, int]:
        return {
            "dispatched": self.dispatched,
            "delivered": self.delivered,
            "failed": self.failed,
            "suppressed": self.suppressed,
            "expired": self.expired,
        }


@dataclass
class Tally:
    journeys: dict[str, JourneyCounts] = field(default_factory=dict)
    dispatched: dict[str, dict[str, Any]] = field(default_factory=dict)  # by touchpoint id
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)  # the first, by touchpoint
    # Every record as read, duplicates included, in offset order: what a report is made from.
    dispatch_records: list[dict[str, Any]] = field(default_factory=list)
    outcome_records: list[dict[str, Any]] = field(default_factory=list)
    duplicate_dispatches: int = 0
    duplicate_outcomes: int = 0
    conflicting_outcomes: int = 0  # a repeated outcome that says something else (never, we hope)
    undecodable: int = 0
    delivered_by_channel: Counter[str] = field(default_factory=Counter)
    suppressed_by_reason: Counter[str] = field(default_factory=Counter)
    expired_by_reason: Counter[str] = field(default_factory=Counter)
    failed_by_reason: Counter[str] = field(default_factory=Counter)

    def journey(self, name: str) -> JourneyCounts:
        counts = self.journeys.get(name)
        if counts is None:
            counts = self.journeys[name] = JourneyCounts()
        return counts

    def add_dispatch(self, record: Mapping[str, Any]) -> None:
        self.dispatch_records.append(dict(record))
        touchpoint = str(record["touchpoint_id"])
        if touchpoint in self.dispatched:
            self.duplicate_dispatches += 1
            return
        self.dispatched[touchpoint] = dict(record)
        self.journey(str(record["journey"])).dispatched += 1

    def add_outcome(self, record: Mapping[str, Any]) -> None:
        self.outcome_records.append(dict(record))
        touchpoint = str(record["touchpoint_id"])
        first = self.outcomes.get(touchpoint)
        if first is not None:
            self.duplicate_outcomes += 1
            if first["status"] != record["status"]:
                self.conflicting_outcomes += 1
            return
        self.outcomes[touchpoint] = dict(record)
        counts = self.journey(str(record["journey"]))
        status = str(record["status"])
        reason = str(record.get("reason") or "unknown")
        if status == "DELIVERED":
            counts.delivered += 1
            self.delivered_by_channel[str(record.get("channel") or "unknown")] += 1
        elif status == "FAILED":
            counts.failed += 1
            self.failed_by_reason[reason] += 1
        elif status == "SUPPRESSED":
            counts.suppressed += 1
            self.suppressed_by_reason[reason] += 1
        elif status == "EXPIRED":
            counts.expired += 1
            self.expired_by_reason[reason] += 1

    @property
    def in_flight(self) -> int:
        """Dispatched touchpoints without an outcome yet."""
        return sum(1 for touchpoint in self.dispatched if touchpoint not in self.outcomes)

    def totals(self) -> JourneyCounts:
        total = JourneyCounts()
        for counts in self.journeys.values():
            total.add(counts)
        return total

    def as_json(self) -> dict[str, Any]:
        return {
            "journeys": {name: self.journeys[name].as_json() for name in sorted(self.journeys)},
            "totals": {**self.totals().as_json(), "in_flight": self.in_flight},
            "delivered_by_channel": dict(sorted(self.delivered_by_channel.items())),
            "suppressed_by_reason": dict(sorted(self.suppressed_by_reason.items())),
            "expired_by_reason": dict(sorted(self.expired_by_reason.items())),
            "failed_by_reason": dict(sorted(self.failed_by_reason.items())),
            "duplicates_dropped": {
                "dispatch_records": self.duplicate_dispatches,
                "outcome_records": self.duplicate_outcomes,
            },
            "conflicting_outcomes": self.conflicting_outcomes,
            "undecodable_records": self.undecodable,
        }


class Follower:
    """Reads ``dispatch`` and ``deliveries`` from ``start`` on, into a :class:`Tally`, until
    cancelled; :meth:`wait_caught_up` waits until it has read up to given offsets."""

    def __init__(
        self,
        settings: Settings,
        schemas: SchemaSet,
        tally: Tally,
        start: Offsets,
        on_record: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.schemas = schemas
        self.tally = tally
        self.start = dict(start)
        self.positions: Offsets = dict(start)
        self.on_record = on_record
        self._roles = {
            settings.topic(TopicRole.DISPATCH): TopicRole.DISPATCH,
            settings.topic(TopicRole.DELIVERIES): TopicRole.DELIVERIES,
        }

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            client_id=f"{self.settings.client_id}-demo-watch",
            group_id=None,
            enable_auto_commit=False,
            **self.settings.kafka_client_kwargs(),
        )
        await consumer.start()
        try:
            consumer.assign(list(self.start))
            for tp, offset in self.start.items():
                consumer.seek(tp, offset)
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=2000)
                for tp, messages in batches.items():
                    for message in messages:
                        self._take(tp.topic, message.value)
                for tp in self.start:
                    self.positions[tp] = await consumer.position(tp)
                if batches and self.on_record is not None:
                    self.on_record()
        finally:
            await consumer.stop()

    def _take(self, topic: str, value: bytes | None) -> None:
        role = self._roles[topic]
        if value is None:
            self.tally.undecodable += 1
            return
        try:
            record = self.schemas.decode(value, RECORD_OF_TOPIC[role]).record
        except DecodeError:
            self.tally.undecodable += 1
            return
        if role is TopicRole.DISPATCH:
            self.tally.add_dispatch(record)
        else:
            self.tally.add_outcome(record)

    def caught_up(self, end: Offsets) -> bool:
        return all(self.positions.get(tp, 0) >= offset for tp, offset in end.items())

    async def wait_caught_up(self, end: Offsets, deadline: float) -> bool:
        """Until every partition is read up to ``end``; False if ``deadline`` (monotonic)
        passes first."""
        return await wait_until(lambda: self.caught_up(end), deadline)


async def wait_until(condition: Callable[[], bool], deadline: float, poll: float = 0.1) -> bool:
    """Until ``condition()`` holds (True) or ``deadline`` (monotonic) passes (False)."""
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(poll)


async def end_offsets(settings: Settings, partitions: list[TopicPartition]) -> Offsets:
    consumer = AIOKafkaConsumer(
        client_id=f"{settings.client_id}-demo-offsets", **settings.kafka_client_kwargs()
    )
    await consumer.start()
    try:
        found: Offsets = await consumer.end_offsets(partitions)
        return found
    finally:
        await consumer.stop()


async def group_lag(settings: Settings, group: str, end: Offsets) -> int:
    """Records of ``end``'s partitions that ``group`` has not committed yet."""
    admin = admin_client(settings)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group, partitions=list(end))
    finally:
        await admin.close()
    lag = 0
    for tp, offset in end.items():
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        lag += max(offset - done, 0)
    return lag
