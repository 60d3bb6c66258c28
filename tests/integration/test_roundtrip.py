"""Every record type goes through the real broker and comes back the same."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.names import TopicRole
from tests.integration.kafkatools import end_offsets, wait_for_new
from tests.samples import FULL_NAMES, SAMPLES

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("role", list(TopicRole))
async def test_every_record_type_round_trips_through_the_broker(
    kafka: Settings, producer: AIOKafkaProducer, schemas: SchemaSet, role: TopicRole
) -> None:
    topic = kafka.topic(role)
    before = await end_offsets(kafka, topic)
    record = SAMPLES[role](customer_id="cust-roundtrip")
    await producer.send_and_wait(
        topic, value=schemas.encode(FULL_NAMES[role], record), key=b"cust-roundtrip"
    )
    (message,) = await wait_for_new(kafka, topic, before, 1)
    assert message.key == b"cust-roundtrip"
    assert schemas.decode(message.value, FULL_NAMES[role]).record == record
