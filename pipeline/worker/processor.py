"""Input records through the journey core: the work of the worker's loop, without Faust.

The loop hands over records in batches (what its consumer's fetches brought, in event-time order,
up to 1,000). For each record of a batch: judge it at the intake (a dead letter is queued with the
batch's commands), turn it into the core's event, read the customer's state (the batch's own newer
state first, then that of the batch before it if that one is not finished; a state kept decoded in
:mod:`~pipeline.worker.statecache` when the stored bytes are the ones it kept), ``decide``, and
encode the commands and the new state. Then, once per batch: queue every command with the producer
(:meth:`JourneyProcessor.begin`), wait for the broker's acknowledgement of all of them, and only
then write each changed customer's new state and tell the due index the customer's next wake-up
(:meth:`JourneyProcessor.finish`). Between the two the loop decides the next batch, so the worker
is not idle while the broker acknowledges.

Commands are published *before* any state of their batch is written. If the worker dies in between,
the batch is read again (its offsets were not committed), decided again on the old state, and the
same deterministic touchpoint ids are published again, which the senders de-duplicate; the other
order would lose them (the table would already remember the events, and a replay would be a
duplicate that sends nothing). A batch decided on the unfinished states of the one before it is
read again with it, in the same order, and decided the same. Waiting once per batch instead of once
per record is what lets the producer fill its requests. Nothing a single record does can stop the
worker: an unexpected error dead-letters that record (UNPROCESSABLE) and the rest of the batch goes
on. Dead letters are published with the batch's commands, so nothing leaves a batch half published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from pipeline.clock import Clock
from pipeline.codec import DeadLetterError, SchemaSet
from pipeline.config import Settings
from pipeline.intake import Admitted, DeadLetter, Intake, SourceRecord
from pipeline.journeys.engine import JourneyEngine
from pipeline.journeys.model import (
    CancelTouchpoint,
    Command,
    CustomerState,
    Event,
    SendTouchpoint,
    Wake,
)
from pipeline.metrics import WorkerMetrics
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.records import Publisher
from pipeline.worker import scheduler
from pipeline.worker.convert import dispatch_record, outcome_record, to_event
from pipeline.worker.statecache import StateCache
from pipeline.worker.statecodec import decode_value, encode_value

log = logging.getLogger(__name__)

DISPATCH = RECORD_OF_TOPIC[TopicRole.DISPATCH]
DELIVERY = RECORD_OF_TOPIC[TopicRole.DELIVERIES]


class StateTable(Protocol):
    """The customers table as the processor uses it.

    ``source`` is the record a read or write is for: a partitioned table keeps each customer in
    the partition of the records about them.
    """

    def read(self, key: bytes, source: SourceRecord) -> bytes | None: ...

    def write(self, key: bytes, value: bytes, source: SourceRecord) -> None: ...


class _Change:
    """A customer's newest state within one batch, as stored, and the record that brought it."""

    __slots__ = ("customer", "source", "state", "value", "wake")

    def __init__(
        self,
        customer: str,
        state: CustomerState,
        source: SourceRecord,
        wake: datetime | None,
        value: bytes,
    ) -> None:
        self.customer = customer
        self.state = state
        self.source = source
        self.wake = wake
        self.value = value


class Batch:
    """One batch between :meth:`JourneyProcessor.begin` and :meth:`JourneyProcessor.finish`:
    its records to publish, what the producer returned for them (None: not queued yet), and
    each changed customer's newest state."""

    __slots__ = ("behind", "changes", "pending", "records")

    def __init__(self, behind: dict[bytes, _Change] | None = None) -> None:
        self.records: list[tuple[str, bytes | None, bytes]] = []
        self.changes: dict[bytes, _Change] = {}
        self.pending: list[Any] | None = None
        self.behind = behind


class _Children:
    """Labelled children of the processor's metrics, each looked up once: prometheus_client's
    ``labels()`` checks and locks on every call, a few µs twice per record. Bounded as the
    metrics themselves are, by their label values."""

    def __init__(self) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def __call__(self, metric: Any, *values: str) -> Any:
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child


class JourneyProcessor:
    def __init__(
        self,
        *,
        settings: Settings,
        schemas: SchemaSet,
        engine: JourneyEngine,
        clock: Clock,
        intake: Intake,
        publisher: Publisher,
        index: scheduler.DueIndex,
        metrics: WorkerMetrics | None = None,
        cache: StateCache | None = None,
    ) -> None:
        self.schemas = schemas
        self.engine = engine
        self.clock = clock
        self.intake = intake
        self.publisher = publisher
        self.index = index
        self.metrics = metrics or WorkerMetrics()
        self.cache = cache if cache is not None else StateCache(0)
        self._labelled = _Children()
        self.dispatch_topic = settings.topic(TopicRole.DISPATCH)
        self.deliveries_topic = settings.topic(TopicRole.DELIVERIES)

    async def process_batch(self, batch: Sequence[SourceRecord], table: StateTable) -> None:
        """Decide ``batch``, publish its commands and dead letters, then write its states.

        Never raises for a record: an exception here would let offsets be committed for
        commands never published.
        """
        await self.finish(await self.begin(batch, table), table)

    async def begin(
        self, batch: Sequence[SourceRecord], table: StateTable, behind: Batch | None = None
    ) -> Batch:
        """Decide ``batch`` and queue its commands and dead letters with the producer; nothing
        is written yet (:meth:`finish` does that once the broker has them). ``behind``: the batch
        before this one, begun and not yet finished; its states are this one's starting point."""
        decided = Batch(behind.changes if behind is not None else None)
        for source in batch:
            self._decide(source, table, decided)
        decided.behind = None  # only read while deciding; not kept alive past it
        try:
            decided.pending = await self._queue(decided.records)
        except Exception:
            log.exception("could not queue %d records; retrying", len(decided.records))
        return decided

    async def finish(self, decided: Batch, table: StateTable) -> None:
        """Wait until the broker has every record of ``decided``, then write its states."""
        # The decisions stand; the broker must take their commands (and the batch's dead letters)
        # before any state moves on. A broker away for a while holds these partitions here rather
        # than losing anything.
        pause = 0.5
        while True:
            try:
                if decided.pending is None:
                    decided.pending = await self._queue(decided.records)
                await asyncio.gather(*decided.pending)
                break
            except Exception:
                log.exception("could not publish %d records; retrying", len(decided.records))
                decided.pending = None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)
        cache = self.cache
        for key, change in decided.changes.items():
            table.write(key, change.value, change.source)
            cache.put(key, change.value, change.state)
            self.index.set(change.customer, change.wake, change.source.partition)

    def _decide(self, source: SourceRecord, table: StateTable, decided: Batch) -> None:
        records, changes = decided.records, decided.changes
        taken = self.intake.judge(source)
        if isinstance(taken, DeadLetter):
            self._labelled(self.metrics.events, source.topic, "unknown", "dead_lettered").inc()
            records.append(self.intake.letter(taken))
            return
        try:
            now = self.clock.now()
            event: Event
            kind = (
                taken.record.get("type", "tombstone")
                if isinstance(taken, Admitted)
                else "tombstone"
            )
            if isinstance(taken, Admitted) and taken.role is TopicRole.DUE_NOTICES:
                event = Wake(taken.record["customer_id"], now)
                kind = "DUE_NOTICE"
                lateness = (now - taken.record["occurred_at"]).total_seconds() / self.clock.factor
                self.metrics.timer_lateness.observe(max(lateness, 0.0))
            else:
                event = to_event(taken, now)
            customer = event.customer_id
            key = customer.encode("utf-8")
            started = time.perf_counter()
            earlier = changes.get(key)
            if earlier is None and decided.behind is not None:
                earlier = decided.behind.get(key)
            if earlier is not None:
                state: CustomerState | None = earlier.state
            else:
                stored = table.read(key, source)
                state = None
                if stored is not None:
                    state = self.cache.get(key, stored)
                    if state is None:
                        state = decode_value(stored)
            decision = self.engine.decide(state, event, now)
            self.metrics.decision.observe(time.perf_counter() - started)
            outcome = "used" if decision.used else decision.note or "unused"
            self._labelled(self.metrics.events, source.topic, kind, outcome).inc()
            encoded = self.encode(decision.commands, now)
            change = None
            if decision.state is not state:
                # Encoded here, so that a state that cannot be stored dead-letters its record
                # before any of the record's commands is queued.
                wake = self.engine.next_wakeup(decision.state)
                value = encode_value(wake, decision.state)
                change = _Change(customer, decision.state, source, wake, value)
        except Exception as exc:
            log.exception("could not process %s", source.where)
            letter = DeadLetter(
                source,
                DeadLetterError.UNPROCESSABLE,
                f"the worker failed on this record: {type(exc).__name__}: {exc}",
                self.clock.now(),
                consumer="worker",
            )
            records.append(self.intake.letter(letter))
            return
        records.extend(encoded)
        if change is not None:
            changes[key] = change

    def encode(
        self, commands: Sequence[Command], now: datetime
    ) -> list[tuple[str, bytes | None, bytes]]:
        """``(topic, key, value)`` of every command to publish: dispatches and outcomes."""
        records: list[tuple[str, bytes | None, bytes]] = []
        for command in commands:
            key = command.touchpoint.customer_id.encode("utf-8")
            if isinstance(command, SendTouchpoint):
                self._labelled(
                    self.metrics.dispatches, command.touchpoint.journey, command.channels[0].value
                ).inc()
                value = self.schemas.encode(DISPATCH, dispatch_record(command, now), strict=False)
                records.append((self.dispatch_topic, key, value))
            elif isinstance(command, CancelTouchpoint):
                self._labelled(
                    self.metrics.deliveries, "none", command.outcome.value, command.reason
                ).inc()
                value = self.schemas.encode(DELIVERY, outcome_record(command, now), strict=False)
                records.append((self.deliveries_topic, key, value))
        return records

    async def _queue(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> list[Any]:
        """Hand every record to the producer; what it returns completes when the broker has
        each one."""
        return [await self.publisher.send(t, value=v, key=k) for t, k, v in records]
