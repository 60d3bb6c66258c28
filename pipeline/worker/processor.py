"""One input record through the journey core: the work of the worker's agent, without Faust.

For each record: take it through the intake (dead letters go out there), turn it into the core's
event, read the customer's state, ``decide``, publish the commands and wait for the broker's
acknowledgement, then write the new state and tell the due index the customer's next wake-up.

Commands are published *before* the state is written. If the worker dies in between, the record is
read again (its offset was not committed), decided again on the old state, and the same
deterministic touchpoint ids are published again, which the senders de-duplicate; the other order
would lose them. Nothing a single record does can stop the worker: an unexpected error dead-letters
that record (UNPROCESSABLE) and processing goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import MutableMapping, Sequence
from datetime import datetime

from pipeline.clock import Clock
from pipeline.codec import DeadLetterError, SchemaSet
from pipeline.config import Settings
from pipeline.intake import Admitted, DeadLetter, Intake, Publisher, SourceRecord
from pipeline.journeys.engine import JourneyEngine
from pipeline.journeys.model import CancelTouchpoint, Command, Event, SendTouchpoint, Wake
from pipeline.metrics import WorkerMetrics
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.worker import scheduler
from pipeline.worker.convert import dispatch_record, outcome_record, to_event
from pipeline.worker.statecodec import decode_state, encode_state

log = logging.getLogger(__name__)

DISPATCH = RECORD_OF_TOPIC[TopicRole.DISPATCH]
DELIVERY = RECORD_OF_TOPIC[TopicRole.DELIVERIES]


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
    ) -> None:
        self.schemas = schemas
        self.engine = engine
        self.clock = clock
        self.intake = intake
        self.publisher = publisher
        self.index = index
        self.metrics = metrics or WorkerMetrics()
        self.dispatch_topic = settings.topic(TopicRole.DISPATCH)
        self.deliveries_topic = settings.topic(TopicRole.DELIVERIES)

    async def process(self, source: SourceRecord, table: MutableMapping[bytes, bytes]) -> None:
        taken = await self.intake.take(source)
        if taken is None:  # dead-lettered, and the dead letter is on the broker
            self.metrics.events.labels(source.topic, "unknown", "dead_lettered").inc()
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
            stored = table.get(key)
            state = decode_state(scheduler.unpack_state(stored)) if stored is not None else None
            decision = self.engine.decide(state, event, now)
            self.metrics.decision.observe(time.perf_counter() - started)
            outcome = "used" if decision.used else decision.note or "unused"
            self.metrics.events.labels(source.topic, kind, outcome).inc()
            records = self.encode(decision.commands, now)
        except Exception as exc:
            log.exception("could not process %s", source.where)
            await self.intake.dead_letter(
                DeadLetter(
                    source,
                    DeadLetterError.UNPROCESSABLE,
                    f"the worker failed on this record: {type(exc).__name__}: {exc}",
                    self.clock.now(),
                    consumer="worker",
                )
            )
            return
        # The decision stands; the broker must take its commands before the state moves on.
        # A broker away for a while holds this partition here rather than losing anything.
        pause = 0.5
        while True:
            try:
                await self.send(records)
                break
            except Exception:
                log.exception("could not publish the commands of %s; retrying", source.where)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)
        if decision.state is not state:
            wake = self.engine.next_wakeup(decision.state)
            table[key] = scheduler.pack(wake, encode_state(decision.state))
            self.index.set(customer, wake, source.partition)

    def encode(self, commands: Sequence[Command], now: datetime) -> list[tuple[str, bytes, bytes]]:
        """``(topic, key, value)`` of every command to publish: dispatches and outcomes."""
        records = []
        for command in commands:
            key = command.touchpoint.customer_id.encode("utf-8")
            if isinstance(command, SendTouchpoint):
                self.metrics.dispatches.labels(
                    command.touchpoint.journey, command.channels[0].value
                ).inc()
                value = self.schemas.encode(DISPATCH, dispatch_record(command, now))
                records.append((self.dispatch_topic, key, value))
            elif isinstance(command, CancelTouchpoint):
                self.metrics.deliveries.labels("none", command.outcome.value, command.reason).inc()
                value = self.schemas.encode(DELIVERY, outcome_record(command, now))
                records.append((self.deliveries_topic, key, value))
        return records

    async def send(self, records: Sequence[tuple[str, bytes, bytes]]) -> None:
        """Publish and wait until the broker has every one of them."""
        if records:
            await asyncio.gather(
                *(self.publisher.send_and_wait(t, value=v, key=k) for t, k, v in records)
            )
