"""What the demo counts, and how it reads it: ``dispatch`` and ``deliveries`` from the broker.

:class:`Tally` is pure: it takes decoded ``TouchpointCommand`` and ``DeliveryOutcome`` records,
keeps them, and counts every touchpoint once however often its record was written (at-least-once
delivery means a record may be written twice; the touchpoint id says it is the same one), with the
report's own counting, so that the live view and the summary cannot disagree with the report.
:class:`Follower` feeds it from the broker with one consumer outside any consumer group (it takes
nothing from the pipeline's own groups), from the offsets the run started at, so that a run counts
only its own records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.analytics.report import Counting
from pipeline.codec import DecodeError, SchemaSet
from pipeline.config import Settings
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.topics import admin_client

Offsets = dict[TopicPartition, int]


@dataclass
class Tally:
    """What the demo has read of ``dispatch`` and ``deliveries``: every record as read (duplicates
    included, in offset order: what the report and the uplift are made from) and the touchpoints
    counted once each, by the report's own :class:`~pipeline.analytics.report.Counting`, which
    the live view reads as records come and the summary reads at the end."""

    counting: Counting = field(default_factory=Counting)
    dispatch_records: list[dict[str, Any]] = field(default_factory=list)
    outcome_records: list[dict[str, Any]] = field(default_factory=list)
    undecodable: int = 0

    def add_dispatch(self, record: Mapping[str, Any]) -> None:
        kept = dict(record)
        self.dispatch_records.append(kept)
        self.counting.add_dispatch(kept)

    def add_outcome(self, record: Mapping[str, Any]) -> None:
        kept = dict(record)
        self.outcome_records.append(kept)
        self.counting.add_outcome(kept)

    @property
    def in_flight(self) -> int:
        """Dispatched touchpoints without an outcome yet."""
        return self.counting.in_flight


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
