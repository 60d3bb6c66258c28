"""Through the real broker: every input record is used or dead-lettered with its original bytes."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.clock import ManualClock
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.intake import DEAD_LETTER, Admitted, Intake, SourceRecord, Tombstone
from pipeline.names import INPUT_ROLES, TopicRole
from pipeline.topics import ensure_topics
from tests.integration.kafkatools import Offsets, end_offsets, read_range, wait_for_new
from tests.samples import FULL_NAMES, SAMPLES, T0
from tests.support import delete_topics_with_prefix, settings_for

pytestmark = pytest.mark.integration

CLOCK = ManualClock(T0 + timedelta(days=30))


def _intake(kafka: Settings, schemas: SchemaSet, producer: AIOKafkaProducer) -> Intake:
    return Intake(
        schemas=schemas,
        topics={kafka.topic(role): role for role in INPUT_ROLES},
        dead_letter_topic=kafka.topic(TopicRole.DEAD_LETTERS),
        publisher=producer,
        clock=CLOCK,
        max_future=timedelta(hours=24),
    )


async def _consume_through_intake(
    kafka: Settings, intake: Intake, start: dict[str, Offsets], end: dict[str, Offsets]
) -> list[Admitted | Tombstone]:
    """What a worker does with each record: take it through the intake. Never raises per record."""
    used: list[Admitted | Tombstone] = []
    for topic in start:
        for message in await read_range(kafka, topic, start[topic], end[topic]):
            taken = await intake.take(
                SourceRecord(
                    message.topic,
                    message.partition,
                    message.offset,
                    message.key,
                    message.value,
                    message.timestamp,
                    tuple(message.headers),
                )
            )
            if taken is not None:
                used.append(taken)
    return used


async def _offsets(kafka: Settings, topics: Iterable[str]) -> dict[str, Offsets]:
    return {topic: await end_offsets(kafka, topic) for topic in topics}


async def test_every_record_is_used_or_dead_lettered_with_its_bytes(
    kafka: Settings, producer: AIOKafkaProducer, schemas: SchemaSet
) -> None:
    purchases = kafka.topic(TopicRole.PURCHASES)
    preferences = kafka.topic(TopicRole.PREFERENCES)
    dead_letters = kafka.topic(TopicRole.DEAD_LETTERS)
    valid = schemas.encode(FULL_NAMES[TopicRole.PURCHASES], SAMPLES[TopicRole.PURCHASES]())
    shipment = schemas.encode(FULL_NAMES[TopicRole.SHIPMENTS], SAMPLES[TopicRole.SHIPMENTS]())
    # (topic, key, value, expected dead-letter error or None when the record is usable)
    cases: list[tuple[str, bytes | None, bytes | None, str | None]] = [
        (purchases, b"cust-1", valid, None),
        (preferences, b"cust-1", None, None),  # a tombstone: forget the customer
        (purchases, b"cust-1", b'{"type": "ORDER_PLACED"}', "NOT_AVRO"),
        (purchases, b"cust-1", valid[:25], "UNDECODABLE"),
        (purchases, b"cust-1", valid[:2] + b"\xee" * 8 + valid[10:], "UNKNOWN_SCHEMA"),
        (purchases, b"cust-1", shipment, "WRONG_TOPIC"),
        (purchases, b"someone-else", valid, "KEY_MISMATCH"),
        (purchases, None, valid, "KEY_MISMATCH"),
        (purchases, b"cust-1", None, "NOT_AVRO"),
        (
            purchases,
            b"cust-1",
            schemas.encode(
                FULL_NAMES[TopicRole.PURCHASES], SAMPLES[TopicRole.PURCHASES](currency="euro")
            ),
            "INVALID",
        ),
    ]
    start = await _offsets(kafka, [purchases, preferences])
    dead_start = await end_offsets(kafka, dead_letters)
    for topic, key, value, _ in cases:
        await producer.send_and_wait(topic, value=value, key=key, headers=[("trace", b"t-1")])
    end = await _offsets(kafka, [purchases, preferences])

    used = await _consume_through_intake(kafka, _intake(kafka, schemas, producer), start, end)

    expected_dead = [case for case in cases if case[3] is not None]
    letters = [
        schemas.decode(m.value, DEAD_LETTER).record
        for m in await wait_for_new(kafka, dead_letters, dead_start, len(expected_dead))
    ]
    assert len(used) + len(letters) == len(cases)  # every input accounted for
    assert [type(u).__name__ for u in used] == ["Admitted", "Tombstone"]
    assert sorted((letter["value"] or b"", letter["error"]) for letter in letters) == sorted(
        (value or b"", error) for _, _, value, error in expected_dead
    )
    for letter in letters:
        assert letter["source_topic"] == purchases
        assert letter["reason"]
        assert letter["headers"] == [{"key": "trace", "value": b"t-1"}]
        assert letter["event_id"] == (
            f"{purchases}:{letter['source_partition']}:{letter['source_offset']}"
        )


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    garbage=st.lists(st.binary(max_size=200), min_size=1, max_size=15),
    seed=st.integers(min_value=0, max_value=2**32),
)
async def test_random_batches_through_the_broker_never_stop_the_consumer(
    kafka: Settings,
    producer: AIOKafkaProducer,
    schemas: SchemaSet,
    garbage: list[bytes],
    seed: int,
) -> None:
    """Random bytes, truncations, wrong fingerprints and wrong keys, mixed with valid events."""
    rng = random.Random(seed)
    records: list[tuple[TopicRole, bytes, bytes]] = []
    for blob in garbage:
        role = rng.choice(INPUT_ROLES)
        valid = schemas.encode(FULL_NAMES[role], SAMPLES[role]())
        mangled = rng.choice(
            [
                blob,
                valid[: rng.randrange(len(valid))],
                valid[:2] + rng.randbytes(8) + valid[10:],
            ]
        )
        records.append((role, b"cust-1", mangled))
        records.append((role, b"not-cust-1", valid))
        records.append((role, b"cust-1", valid))
    topics = [kafka.topic(role) for role in INPUT_ROLES]
    start = await _offsets(kafka, topics)
    dead_start = await end_offsets(kafka, kafka.topic(TopicRole.DEAD_LETTERS))
    for role, key, value in records:
        await producer.send_and_wait(kafka.topic(role), value=value, key=key)
    end = await _offsets(kafka, topics)

    intake = _intake(kafka, schemas, producer)
    used = await _consume_through_intake(kafka, intake, start, end)

    assert len(used) >= len(garbage)  # at least every untouched valid event
    assert len(used) + intake.dead_lettered == len(records)
    letters = await wait_for_new(
        kafka, kafka.topic(TopicRole.DEAD_LETTERS), dead_start, intake.dead_lettered
    )
    decoded: list[dict[str, Any]] = [schemas.decode(m.value, DEAD_LETTER).record for m in letters]
    assert len(decoded) == intake.dead_lettered
    assert intake.dead_lettered >= len(garbage)  # every wrong key at least
    assert all(letter["reason"] for letter in decoded)
    produced = {(kafka.topic(role), key, value) for role, key, value in records}
    assert all(
        (letter["source_topic"], letter["key"], letter["value"]) in produced for letter in decoded
    )


async def _group_member_takes(
    kafka: Settings, intake: Intake, group: str, count: int
) -> list[Admitted | Tombstone | None]:
    """A worker's at-least-once loop: take each record through the intake, then commit."""
    consumer = AIOKafkaConsumer(
        kafka.topic(TopicRole.SHIPMENTS),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kafka.kafka_client_kwargs(),
    )
    await consumer.start()
    taken: list[Admitted | Tombstone | None] = []
    try:
        async with asyncio.timeout(60):
            while len(taken) < count:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    for m in messages:
                        source = SourceRecord(m.topic, m.partition, m.offset, m.key, m.value)
                        taken.append(await intake.take(source))
                await consumer.commit()
    finally:
        await consumer.stop()
    return taken


async def test_a_restarted_group_member_resumes_after_what_it_committed(
    broker: Settings, producer: AIOKafkaProducer, schemas: SchemaSet
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}."
    kafka = settings_for(prefix)
    await ensure_topics(kafka)
    try:
        topic = kafka.topic(TopicRole.SHIPMENTS)
        group = f"intake-{prefix}"
        intake = _intake(kafka, schemas, producer)
        valid = schemas.encode(FULL_NAMES[TopicRole.SHIPMENTS], SAMPLES[TopicRole.SHIPMENTS]())
        for value in (b"\x00junk", valid, b"\xc3\x01short"):
            await producer.send_and_wait(topic, value=value, key=b"cust-1")

        first = await _group_member_takes(kafka, intake, group, 3)
        assert [taken is not None for taken in first].count(True) == 1
        assert intake.dead_lettered == 2

        await producer.send_and_wait(topic, value=valid, key=b"cust-1")
        second = await _group_member_takes(kafka, intake, group, 1)
        assert len(second) == 1
        assert isinstance(second[0], Admitted)

        letters = await wait_for_new(kafka, kafka.topic(TopicRole.DEAD_LETTERS), {}, 2)
        records = [schemas.decode(m.value, DEAD_LETTER).record for m in letters]
        assert sorted(r["value"] for r in records) == [b"\x00junk", b"\xc3\x01short"]
        assert {r["error"] for r in records} == {"NOT_AVRO"}
    finally:
        await delete_topics_with_prefix(kafka, prefix)
