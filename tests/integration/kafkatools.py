"""Small helpers for reading exact ranges of a topic in integration tests (no consumer groups)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.config import Settings
from pipeline.topics import admin_client

Offsets = dict[TopicPartition, int]


async def partitions(settings: Settings, topic: str) -> list[TopicPartition]:
    admin = admin_client(settings)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described.get("error_code") or not described.get("partitions"):
        raise LookupError(f"topic {topic} does not exist")
    return [TopicPartition(topic, p["partition"]) for p in described["partitions"]]


async def end_offsets(settings: Settings, topic: str) -> Offsets:
    wanted = await partitions(settings, topic)
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs())
    await consumer.start()
    try:
        result: Offsets = await consumer.end_offsets(wanted)
        return result
    finally:
        await consumer.stop()


async def read_range(
    settings: Settings, topic: str, start: Offsets, end: Offsets, timeout: float = 30.0
) -> list[Any]:
    """Every record of ``topic`` from ``start`` up to (not including) ``end``, by partition."""
    wanted = {tp: end[tp] for tp in end if end[tp] > start.get(tp, 0)}
    if not wanted:
        return []
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, group_id=None, **settings.kafka_client_kwargs()
    )
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, start.get(tp, 0))
        async with asyncio.timeout(timeout):
            while wanted:
                batches = await consumer.getmany(timeout_ms=500)
                for tp, messages in batches.items():
                    for message in messages:
                        if tp in wanted and message.offset < wanted[tp]:
                            records.append(message)
                    if tp in wanted and await consumer.position(tp) >= wanted[tp]:
                        del wanted[tp]
    finally:
        await consumer.stop()
    return records


async def wait_for_new(
    settings: Settings, topic: str, start: Offsets, count: int, timeout: float = 30.0
) -> list[Any]:
    """Wait until ``count`` records follow ``start`` on ``topic``, then return them."""
    async with asyncio.timeout(timeout):
        while True:
            end = await end_offsets(settings, topic)
            if sum(end[tp] - start.get(tp, 0) for tp in end) >= count:
                return await read_range(settings, topic, start, end)
            await asyncio.sleep(0.1)


async def produce_malformed(
    producer: Any, settings: Settings, count: int, tag: str
) -> set[tuple[str, int, int]]:
    """``count`` records that are not Avro, spread over three input topics and their partitions:
    each must come out on dead-letters naming its (topic, partition, offset), returned here."""
    from pipeline.names import TopicRole

    roles = (TopicRole.PURCHASES, TopicRole.SHIPMENTS, TopicRole.APP_USAGE)
    pending = [
        await producer.send(
            settings.topic(roles[i % len(roles)]),
            key=f"cust-{i % 37}".encode(),
            value=f"not avro {tag} {i}".encode(),
        )
        for i in range(count)
    ]
    return {(m.topic, m.partition, m.offset) for m in await asyncio.gather(*pending)}


async def committed_offsets(settings: Settings, group: str) -> Offsets:
    admin = admin_client(settings)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}


async def wait_committed(settings: Settings, group: str, topics: list[str], timeout: float) -> None:
    """Until ``group`` has committed the end of every partition of ``topics``."""
    ends: Offsets = {}
    for topic in topics:
        ends.update(await end_offsets(settings, topic))
    async with asyncio.timeout(timeout):
        while True:
            committed = await committed_offsets(settings, group)
            if all(committed.get(tp, -1) >= end for tp, end in ends.items()):
                return
            await asyncio.sleep(0.2)
