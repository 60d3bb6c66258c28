from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.config import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
async def producer(kafka: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(acks="all", **kafka.kafka_client_kwargs())
    await producer.start()
    yield producer
    await producer.stop()
