"""No input offset is skipped: every record is used, a duplicate, or dead-lettered, across a
SIGKILL of the worker while input keeps arriving.

Malformed records are the sharpest probe: each one must come out on ``dead-letters`` naming its
source offset, so a record the worker never saw shows up as a missing offset. Before the worker
committed its own offsets, a restart under load sometimes moved the group past records nobody had
seen (faust-streaming#606); here the produced offsets and the dead-lettered ones must be the same
set, and once the worker has caught up the group's committed offsets are the topics' ends.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from tests.integration.kafkatools import (
    end_offsets,
    produce_malformed,
    read_range,
    wait_committed,
)
from tests.integration.processes import worker_process
from tests.support import free_ports

pytestmark = pytest.mark.integration

DEAD_LETTER = RECORD_OF_TOPIC[TopicRole.DEAD_LETTERS]
BEFORE, WHILE_DOWN, AFTER = 400, 1500, 300


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
        produced = await produce_malformed(producer, topics, BEFORE, "before")
        worker.kill()  # mid-stream: some of these are decided, some not, none committed late
        produced |= await produce_malformed(producer, topics, WHILE_DOWN, "while-down")
        worker.start()
        recovery = await worker.wait_ready()
        produced |= await produce_malformed(producer, topics, AFTER, "after")

        await wait_committed(topics, topics.worker_id, inputs, timeout=90)
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
