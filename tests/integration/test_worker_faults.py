"""No input offset is skipped: every record is used, a duplicate, or dead-lettered, across a
SIGKILL of the worker while input keeps arriving.

Malformed records are the sharpest probe: each one must come out on ``dead-letters`` naming its
source offset, so a record the worker never saw shows up as a missing offset. Before the worker
committed its own offsets, a restart under load sometimes moved the group past records nobody had
seen (faust-streaming#606); here the produced offsets and the dead-lettered ones must be the same
set, and once the worker has caught up the group's committed offsets are the topics' ends.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.topics import admin_client
from tests.integration.kafkatools import end_offsets, read_range
from tests.integration.processes import worker_process
from tests.support import free_ports

pytestmark = pytest.mark.integration

DEAD_LETTER = RECORD_OF_TOPIC[TopicRole.DEAD_LETTERS]
BEFORE, WHILE_DOWN, AFTER = 400, 1500, 300


async def _produce_malformed(
    producer: AIOKafkaProducer, settings: Settings, count: int, tag: str
) -> set[tuple[str, int, int]]:
    """``count`` records that are not Avro, spread over the input topics and partitions."""
    roles = (TopicRole.PURCHASES, TopicRole.SHIPMENTS, TopicRole.APP_USAGE)
    pending = [
        await producer.send(
            settings.topic(roles[i % len(roles)]),
            key=f"cust-{i % 37}".encode(),
            value=f"not avro {tag} {i} ".encode() + os.urandom(8),
        )
        for i in range(count)
    ]
    return {(m.topic, m.partition, m.offset) for m in await asyncio.gather(*pending)}


async def _committed(settings: Settings, group: str) -> dict[TopicPartition, int]:
    admin = admin_client(settings)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}


async def test_no_input_offset_is_skipped_across_a_sigkill(
    topics: Settings, producer: AIOKafkaProducer, schemas: SchemaSet, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    worker = worker_process(topics, tmp_path / "state", tmp_path / "worker.log", port)
    letters_topic = topics.topic(TopicRole.DEAD_LETTERS)
    letters_start = await end_offsets(topics, letters_topic)
    inputs = [
        topics.topic(r) for r in (TopicRole.PURCHASES, TopicRole.SHIPMENTS, TopicRole.APP_USAGE)
    ]
    worker.start()
    try:
        await worker.wait_ready()
        produced = await _produce_malformed(producer, topics, BEFORE, "before")
        worker.kill()  # mid-stream: some of these are decided, some not, none committed late
        produced |= await _produce_malformed(producer, topics, WHILE_DOWN, "while-down")
        worker.start()
        recovery = await worker.wait_ready()
        produced |= await _produce_malformed(producer, topics, AFTER, "after")

        ends = {tp: o for topic in inputs for tp, o in (await end_offsets(topics, topic)).items()}
        async with asyncio.timeout(90):  # until the group has committed every record
            while True:
                committed = await _committed(topics, topics.worker_id)
                if all(committed.get(tp, -1) >= end for tp, end in ends.items()):
                    break
                await asyncio.sleep(0.2)
        letters_end = await end_offsets(topics, letters_topic)
        letters = await read_range(topics, letters_topic, letters_start, letters_end)
    finally:
        status = worker.stop()
    assert status == 0, worker.tail()
    print(f"worker ready {recovery:.1f} s after SIGKILL and restart")

    records = [schemas.decode(m.value, DEAD_LETTER).record for m in letters]
    lettered = [(r["source_topic"], r["source_partition"], r["source_offset"]) for r in records]
    missing = produced - set(lettered)
    assert not missing, f"{len(missing)} records never dead-lettered, e.g. {sorted(missing)[:5]}"
    assert set(lettered) == produced  # nothing else: duplicates of a record read twice only
    assert {r["error"] for r in records} == {"NOT_AVRO"}
