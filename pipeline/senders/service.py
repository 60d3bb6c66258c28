"""``aftercare senders``: the consumer group on ``dispatch`` that delivers and records outcomes.

Each dispatch record becomes its own task (up to ``max_in_flight`` at once), so a touchpoint
waiting out a retry never holds up another. Offsets are committed per partition up to the first
record not yet finished: at-least-once, whatever order tasks finish in.

Effectively once: before delivering, the touchpoint id is looked up in a ledger of touchpoints that
already have an outcome; after delivering, the outcome goes to ``deliveries`` on the *same partition
number* as the dispatch record (both topics are keyed by customer and sized alike), and only then is
the record counted as finished. When a partition is assigned (a start, a restart after SIGKILL, a
rebalance) the ledger for it is rebuilt by reading that ``deliveries`` partition over the
de-duplication window, so a dispatch record seen again after a crash is recognised and not sent
twice. The providers also get the touchpoint id as an idempotency key where they take one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from pipeline.clock import Clock
from pipeline.codec import DeadLetterError, DecodeError, SchemaSet
from pipeline.config import Settings
from pipeline.intake import Admitted, DeadLetter, Intake, SourceRecord
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.records import Dispatch, Status, delivery_outcome
from pipeline.senders.delivery import Deliverer, Reason, Result

log = logging.getLogger(__name__)

DISPATCH = RECORD_OF_TOPIC[TopicRole.DISPATCH]
DELIVERY = RECORD_OF_TOPIC[TopicRole.DELIVERIES]


@dataclass
class Counters:
    received: int = 0
    duplicates: int = 0
    delivered: int = 0
    failed: int = 0
    expired: int = 0


class OffsetTracker:
    """Which offsets of a partition are still being worked on; what may be committed."""

    def __init__(self) -> None:
        self.pending: dict[TopicPartition, set[int]] = defaultdict(set)
        self.next: dict[TopicPartition, int] = {}

    def started(self, tp: TopicPartition, offset: int) -> None:
        self.pending[tp].add(offset)
        self.next[tp] = max(self.next.get(tp, 0), offset + 1)

    def finished(self, tp: TopicPartition, offset: int) -> None:
        self.pending[tp].discard(offset)

    def committable(self, tps: set[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        result = {}
        for tp, upto in self.next.items():
            if tps is not None and tp not in tps:
                continue
            waiting = self.pending.get(tp)
            result[tp] = min(waiting) if waiting else upto
        return result

    def forget(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self.pending.pop(tp, None)
            self.next.pop(tp, None)


class SenderService:
    def __init__(
        self,
        settings: Settings,
        deliverer: Deliverer,
        schemas: SchemaSet,
        clock: Clock,
        producer: AIOKafkaProducer,
        *,
        group_id: str,
        max_in_flight: int = 500,
        dedupe_window: timedelta = timedelta(hours=96),
    ) -> None:
        self.settings = settings
        self.deliverer = deliverer
        self.schemas = schemas
        self.clock = clock
        self.producer = producer
        self.group_id = group_id
        self.max_in_flight = max_in_flight
        self.dedupe_window = dedupe_window
        self.dispatch_topic = settings.topic(TopicRole.DISPATCH)
        self.deliveries_topic = settings.topic(TopicRole.DELIVERIES)
        self.intake = Intake(
            schemas=schemas,
            topics={self.dispatch_topic: TopicRole.DISPATCH},
            dead_letter_topic=settings.topic(TopicRole.DEAD_LETTERS),
            publisher=producer,
            clock=clock,
            # Dispatch records are ours: clock skew between hosts must not cost a touchpoint.
            max_future=timedelta(days=3650),
            consumer="senders",
        )
        self.tracker = OffsetTracker()
        self.ended: dict[int, set[str]] = defaultdict(set)  # partition -> touchpoint ids ended
        # aiokafka fetches a newly assigned partition while the rebalance listener still runs:
        # nothing of a partition is delivered before its ledger is loaded.
        self.ledger_loaded: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.in_flight: dict[str, asyncio.Task[Any]] = {}  # touchpoint id -> its task
        self.tasks: dict[TopicPartition, set[asyncio.Task[None]]] = defaultdict(set)
        self.counters = Counters()
        self.assigned: set[TopicPartition] = set()
        self.ready = False
        self.consumer: AIOKafkaConsumer | None = None
        self.on_failure: Callable[[str], None] | None = None

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            client_id=f"{self.settings.client_id}-senders",
            group_id=self.group_id,
            group_instance_id=self.settings.instance_id or None,  # static membership
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(self.settings.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(self.settings.session_timeout_seconds * 200),
            **self.settings.kafka_client_kwargs(),
        )
        self.consumer = consumer
        consumer.subscribe([self.dispatch_topic], listener=_Rebalance(self))
        await consumer.start()
        last_commit = time.monotonic()
        try:
            while not stop.is_set():
                # At the limit, fetching pauses but polling goes on: a consumer that stops
                # polling for max.poll.interval is thrown out of the group.
                room = self.max_in_flight - sum(len(t) for t in self.tasks.values())
                if room <= 0 and not consumer.paused():
                    consumer.pause(*consumer.assignment())
                elif room > 0 and consumer.paused():
                    consumer.resume(*consumer.paused())
                # Never more than there is room for: a backlog's first poll once started ~870
                # touchpoints under a limit of 500.
                batches = await consumer.getmany(timeout_ms=200, max_records=min(max(room, 1), 500))
                for tp, messages in batches.items():
                    for message in messages:
                        self._start(tp, message)
                if time.monotonic() - last_commit >= 1.0:
                    await self._commit()
                    last_commit = time.monotonic()
                    await self._measure(consumer)
        finally:
            self.ready = False
            await self._drain(set(self.tasks), timeout=10.0)
            await self._commit()
            await consumer.stop()

    def _start(self, tp: TopicPartition, message: Any) -> None:
        self.tracker.started(tp, message.offset)
        task = asyncio.create_task(self._handle(tp, message))
        self.tasks[tp].add(task)
        task.add_done_callback(self.tasks[tp].discard)
        task.add_done_callback(self._died)

    def _died(self, task: asyncio.Task[None]) -> None:
        # A record whose handling raised is never finished: its partition would commit nothing
        # again while the process looked healthy. End the process instead; the record is read
        # again by whoever takes the partition.
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        if self.on_failure is not None:
            self.on_failure(f"a dispatch record's handling died: {type(error).__name__}: {error}")

    async def _handle(self, tp: TopicPartition, message: Any) -> None:
        """One dispatch record to its outcome. Cancelled (revoked, stopping): left uncommitted."""
        self.counters.received += 1
        source = SourceRecord(
            message.topic,
            message.partition,
            message.offset,
            message.key,
            message.value,
            message.timestamp,
            tuple(message.headers or ()),
        )
        taken = await self.intake.take(source)
        if isinstance(taken, Admitted):
            try:
                dispatch = Dispatch.of(taken.record)
            except (KeyError, TypeError, ValueError) as error:  # valid Avro, yet not one: say so
                reason = f"not a dispatch the senders can act on: {type(error).__name__}: {error}"
                await self.intake.dead_letter(
                    DeadLetter(
                        source,
                        DeadLetterError.UNPROCESSABLE,
                        reason,
                        self.clock.now(),
                        consumer="senders",
                    )
                )
            else:
                await self._deliver_once(tp.partition, dispatch)
        self.tracker.finished(tp, message.offset)

    async def _deliver_once(self, partition: int, dispatch: Dispatch) -> None:
        await self.ledger_loaded[partition].wait()
        touchpoint = dispatch.touchpoint_id
        earlier = self.in_flight.get(touchpoint)
        if earlier is not None:  # the same touchpoint dispatched twice: let the first finish
            await asyncio.wait([earlier])
        if touchpoint in self.ended[partition]:
            self.counters.duplicates += 1
            return
        task = asyncio.current_task()
        assert task is not None
        self.in_flight[touchpoint] = task
        try:
            try:
                result = await self.deliverer.deliver(dispatch)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a bug must end in an outcome, not a stuck partition
                log.exception("delivering %s failed unexpectedly", touchpoint)
                detail = f"{type(error).__name__}: {error}"
                result = Result(Status.FAILED, Reason.INTERNAL_ERROR, detail)
            pause = 0.5
            while True:  # the outcome must reach deliveries; the broker may be away for a while
                try:
                    await self._record(partition, dispatch, result)
                    return
                except Exception:
                    log.exception("could not record the outcome of %s; retrying", touchpoint)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 30.0)
        finally:
            self.in_flight.pop(touchpoint, None)

    async def _record(self, partition: int, dispatch: Dispatch, result: Result) -> None:
        outcome = delivery_outcome(
            touchpoint_id=dispatch.touchpoint_id,
            customer_id=dispatch.customer_id,
            journey=dispatch.journey,
            step=dispatch.step,
            order_id=dispatch.order_id,
            priority=dispatch.priority,
            status=result.status,
            reason=result.reason,
            detail=result.detail,
            channel=result.channel,
            attempts=result.attempts,
            provider_message_id=result.provider_id,
            trigger_occurred_at=dispatch.trigger_occurred_at,
            dispatched_at=dispatch.dispatched_at,
            accepted_at=result.accepted_at,
            due_at=dispatch.due_at,
            now=self.clock.now(),
        )
        await self.producer.send_and_wait(
            self.deliveries_topic,
            # Built field by field from the schema (records.delivery_outcome): not checked for
            # unknown fields.
            value=self.schemas.encode(DELIVERY, outcome, strict=False),
            key=dispatch.customer_id.encode("utf-8"),
            partition=partition,
        )
        self.ended[partition].add(dispatch.touchpoint_id)
        metrics = self.deliverer.metrics
        channel = result.channel.value if result.channel else "none"
        metrics.deliveries.labels(channel, result.status.value, result.reason or "").inc()
        if result.status is Status.DELIVERED and result.accepted_at is not None:
            due = max(dispatch.trigger_occurred_at, dispatch.due_at)
            waited = (result.accepted_at - due).total_seconds() / self.clock.factor
            metrics.end_to_end.labels(channel, dispatch.priority.value).observe(max(waited, 0.0))
        if result.status is Status.DELIVERED:
            self.counters.delivered += 1
        elif result.status is Status.EXPIRED:
            self.counters.expired += 1
        else:
            self.counters.failed += 1

    async def _commit(self, tps: set[TopicPartition] | None = None) -> None:
        if self.consumer is None:
            return
        offsets = {
            tp: OffsetAndMetadata(offset, "")
            for tp, offset in self.tracker.committable(tps).items()
            if tp in self.assigned
        }
        if offsets:
            try:
                await self.consumer.commit(offsets)
            except Exception:  # a rebalance in progress; the next commit catches up
                log.warning("commit failed; will retry", exc_info=True)
                return
            for tp, meta in offsets.items():
                self.deliverer.metrics.committed.labels(tp.topic, str(tp.partition)).set(
                    meta.offset
                )

    async def _measure(self, consumer: AIOKafkaConsumer) -> None:
        metrics = self.deliverer.metrics
        metrics.in_flight.set(sum(len(tasks) for tasks in self.tasks.values()))
        for tp in list(self.assigned):
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            position = await consumer.position(tp)
            metrics.lag.labels(tp.topic, str(tp.partition)).set(max(highwater - position, 0))

    async def _drain(self, tps: set[TopicPartition], timeout: float) -> None:
        tasks = [t for tp in tps for t in self.tasks.get(tp, ())]
        if not tasks:
            return
        _, waiting = await asyncio.wait(tasks, timeout=timeout)
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)

    # -- rebalances ----------------------------------------------------------------------------

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        self.ready = False
        await self._drain(
            revoked, timeout=5.0
        )  # let quick sends finish; the rest go to the next owner
        await self._commit(revoked)
        self.tracker.forget(revoked)
        self.assigned -= revoked
        metrics = self.deliverer.metrics
        for tp in revoked:  # the new owner reports these now
            for gauge in (metrics.committed, metrics.lag):
                with contextlib.suppress(KeyError):
                    gauge.remove(tp.topic, str(tp.partition))
        for tp in revoked:
            self.ended.pop(tp.partition, None)
            self.ledger_loaded[tp.partition].clear()

    async def assigned_to(self, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            self.ended[tp.partition] = await self._ended_touchpoints(tp.partition)
            self.ledger_loaded[tp.partition].set()
        self.assigned |= assigned
        self.ready = True
        log.info(
            "senders own %d dispatch partitions; %d touchpoints already ended in the window",
            len(self.assigned),
            sum(len(ids) for ids in self.ended.values()),
        )

    async def _ended_touchpoints(self, partition: int) -> set[str]:
        """Touchpoint ids with an outcome on this deliveries partition, over the window."""
        tp = TopicPartition(self.deliveries_topic, partition)
        reader = AIOKafkaConsumer(
            client_id=f"{self.settings.client_id}-senders-ledger",
            enable_auto_commit=False,
            **self.settings.kafka_client_kwargs(),
        )
        await reader.start()
        ended: set[str] = set()
        try:
            reader.assign([tp])
            since_ms = int((time.time() - self.dedupe_window.total_seconds()) * 1000)
            found = await reader.offsets_for_times({tp: since_ms})
            end = (await reader.end_offsets([tp]))[tp]
            start = found[tp].offset if found.get(tp) is not None else end
            if start >= end:
                return ended
            reader.seek(tp, start)
            while await reader.position(tp) < end:
                batch = await reader.getmany(tp, timeout_ms=1000)
                for message in batch.get(tp, []):
                    try:
                        record = self.schemas.decode(message.value, DELIVERY).record
                    except DecodeError:
                        continue
                    ended.add(record["touchpoint_id"])
        finally:
            await reader.stop()
        return ended


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: SenderService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.service.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.service.assigned_to(set(assigned))
