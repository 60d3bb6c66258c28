from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.config import Settings
from pipeline.topics import ensure_topics
from tests.support import delete_topics_with_prefix, settings_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
async def producer(kafka: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(acks="all", **kafka.kafka_client_kwargs())
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def topics(broker: Settings) -> AsyncIterator[Settings]:
    """Topics of this test's own (a fresh prefix), for tests that count everything on them."""
    prefix = f"test-{uuid.uuid4().hex[:8]}."
    settings = settings_for(prefix)
    await ensure_topics(settings)
    yield settings
    await delete_topics_with_prefix(settings, prefix)
