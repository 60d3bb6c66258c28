"""A batch through the processor: what is published, in which order, and what is written."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pipeline.clock import ManualClock
from pipeline.codec import SchemaSet
from pipeline.intake import Intake, SourceRecord
from pipeline.journeys.engine import JourneyEngine
from pipeline.journeys.model import CustomerState, Decision, Event
from pipeline.journeysfile import load_journeys
from pipeline.names import COPARTITIONED_ROLES, RECORD_OF_TOPIC, TopicRole
from pipeline.worker import scheduler
from pipeline.worker.processor import JourneyProcessor
from pipeline.worker.statecache import StateCache
from pipeline.worker.statecodec import unpack_state
from tests.samples import T0, purchase
from tests.support import settings_for, until
from tests.unit.worker.doubles import DictTable

SETTINGS = settings_for("unit.")
DISPATCH = SETTINGS.topic(TopicRole.DISPATCH)
DEAD_LETTERS = SETTINGS.topic(TopicRole.DEAD_LETTERS)
PURCHASES = SETTINGS.topic(TopicRole.PURCHASES)


class Broker:
    """Takes records like a producer; refuses the first ``failures`` batches' first record."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.records: list[tuple[str, bytes | None]] = []

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, **kwargs: Any
    ) -> asyncio.Future[None]:
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failures:
            self.failures -= 1
            acknowledged.set_exception(ConnectionError("the broker is away"))
        else:
            self.records.append((topic, key))
            acknowledged.set_result(None)
        return acknowledged

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, **kwargs: Any
    ) -> None:
        await (await self.send(topic, value, key))


class Breaks(JourneyEngine):
    """The default journeys, except that a decision for customer ``boom`` raises."""

    def decide(self, state: CustomerState | None, event: Event, now: Any) -> Decision:
        if event.customer_id == "boom":
            raise RuntimeError("a bug in the core")
        return super().decide(state, event, now)


def _processor(
    broker: Broker, schemas: SchemaSet, cache: StateCache | None = None
) -> JourneyProcessor:
    clock = ManualClock(T0 + timedelta(minutes=1))
    return JourneyProcessor(
        settings=SETTINGS,
        schemas=schemas,
        engine=Breaks(load_journeys(None)),
        clock=clock,
        intake=Intake(
            schemas=schemas,
            topics={SETTINGS.topic(role): role for role in COPARTITIONED_ROLES},
            dead_letter_topic=DEAD_LETTERS,
            publisher=broker,
            clock=clock,
            max_future=timedelta(days=1),
        ),
        publisher=broker,
        index=scheduler.DueIndex(),
        cache=cache,
    )


def _order(schemas: SchemaSet, offset: int, customer: str) -> SourceRecord:
    record = purchase(customer_id=customer, event_id=f"evt-{offset}", order_id=f"order-{offset}")
    value = schemas.encode(RECORD_OF_TOPIC[TopicRole.PURCHASES], record)
    return SourceRecord(PURCHASES, 0, offset, customer.encode(), value)


async def test_a_failing_record_is_dead_lettered_with_its_batch_and_the_rest_goes_on(
    schemas: SchemaSet,
) -> None:
    broker = Broker()
    table = DictTable()
    garbage = SourceRecord(PURCHASES, 0, 3, b"c3", b"not avro")
    batch = [
        _order(schemas, 1, "c1"),
        _order(schemas, 2, "boom"),
        garbage,
        _order(schemas, 4, "c4"),
    ]
    await _processor(broker, schemas).process_batch(batch, table)

    topics = [topic for topic, _ in broker.records]
    assert topics.count(DEAD_LETTERS) == 2  # the record the core failed on, and the garbage
    assert {key for topic, key in broker.records if topic == DISPATCH} == {b"c1", b"c4"}
    assert set(table.data) == {b"c1", b"c4"}


async def test_no_state_is_written_before_the_broker_has_the_commands(schemas: SchemaSet) -> None:
    broker = Broker(failures=1)
    table = DictTable()
    processor = _processor(broker, schemas)
    work = asyncio.create_task(processor.process_batch([_order(schemas, 1, "c1")], table))
    await until(lambda: broker.failures == 0, what="the first attempt refused")
    assert table.data == {}  # ... and nothing was written while it retries
    await asyncio.wait_for(work, timeout=30)
    assert [topic for topic, _ in broker.records].count(DISPATCH) >= 1
    assert set(table.data) == {b"c1"}
    state = unpack_state(table.data[b"c1"])
    assert b"order-1" in state


async def test_a_dead_letter_the_broker_refuses_does_not_cost_the_batch_its_commands(
    schemas: SchemaSet,
) -> None:
    # Faust acknowledges a batch however the processor returns: had this raised, c1's offset
    # could be committed with its commands never published.
    broker = Broker(failures=1)
    table = DictTable()
    garbage = SourceRecord(PURCHASES, 0, 2, b"c2", b"not avro")
    batch = [_order(schemas, 1, "c1"), garbage]
    await asyncio.wait_for(_processor(broker, schemas).process_batch(batch, table), timeout=30)
    assert (DISPATCH, b"c1") in broker.records
    assert (DEAD_LETTERS, b"c2") in broker.records
    assert set(table.data) == {b"c1"}


async def test_the_next_event_of_a_customer_uses_the_state_kept_decoded(schemas: SchemaSet) -> None:
    # The cache given is the one used, even while it is still empty (and so falsy).
    cache = StateCache(100)
    processor = _processor(Broker(), schemas, cache)
    table = DictTable()
    await processor.process_batch([_order(schemas, 1, "c1")], table)
    await processor.process_batch([_order(schemas, 2, "c1")], table)
    assert (cache.hits, cache.misses) == (1, 0)


async def test_a_batch_begun_behind_an_open_one_decides_on_its_states(schemas: SchemaSet) -> None:
    # The loop decides the next batch while the broker acknowledges the one before: that
    # batch's states are not written yet, and the next one must start from them all the same.
    broker = Broker()
    table = DictTable()
    processor = _processor(broker, schemas)
    first = await processor.begin([_order(schemas, 1, "c1")], table)
    second = await processor.begin([_order(schemas, 2, "c1")], table, behind=first)
    assert table.data == {}  # nothing written before its batch is finished
    await processor.finish(first, table)
    after_first = table.data[b"c1"]
    await processor.finish(second, table)
    state = unpack_state(table.data[b"c1"])
    assert table.data[b"c1"] != after_first
    assert b"order-1" in state  # both orders' journeys, one state
    assert b"order-2" in state

    # Decided one after the other, finished each before the next: the same state.
    alone = DictTable()
    other = _processor(Broker(), schemas)
    await other.process_batch([_order(schemas, 1, "c1")], alone)
    await other.process_batch([_order(schemas, 2, "c1")], alone)
    assert alone.data == table.data


async def test_an_open_batch_the_broker_refuses_is_published_again_before_its_states(
    schemas: SchemaSet,
) -> None:
    broker = Broker(failures=1)
    table = DictTable()
    processor = _processor(broker, schemas)
    first = await processor.begin([_order(schemas, 1, "c1")], table)
    second = await processor.begin([_order(schemas, 2, "c2")], table, behind=first)
    await asyncio.wait_for(processor.finish(first, table), timeout=30)
    await processor.finish(second, table)
    assert (DISPATCH, b"c1") in broker.records
    assert (DISPATCH, b"c2") in broker.records
    assert set(table.data) == {b"c1", b"c2"}
