"""Shared fixtures.

The ``kafka`` fixture gives integration tests a real broker: the cluster in
``KAFKA_BOOTSTRAP_SERVERS`` if set, else the local Apache Kafka broker, started once per session
(and stopped at the end if this session started it). Each session works on its own topics, named
with a unique prefix and deleted at the end, so runs never see each other's records.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from pipeline import localkafka
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.topics import admin_client, ensure_topics


@pytest.fixture(scope="session")
def schemas() -> SchemaSet:
    return SchemaSet.load()


def settings_for(prefix: str, **overrides: str) -> Settings:
    """Settings from the environment, with the given topic prefix and small partition counts."""
    env = {
        **os.environ,
        "AFTERCARE_TOPIC_PREFIX": prefix,
        "AFTERCARE_INPUT_PARTITIONS": "4",
        "AFTERCARE_OUTPUT_PARTITIONS": "2",
        **overrides,
    }
    return Settings.from_env(env)


@pytest.fixture(scope="session")
def broker() -> Iterator[Settings]:
    """A running broker (local or configured); yields the plain settings."""
    settings = Settings.from_env()
    if not settings.uses_local_broker:
        yield settings
        return
    already_running = localkafka.status(settings.local_broker).running
    try:
        localkafka.start(settings.local_broker)
    except localkafka.LocalBrokerError as exc:
        pytest.exit(f"cannot run the integration tests: {exc}", returncode=1)
    yield settings
    if not already_running:
        localkafka.stop(settings.local_broker)


@pytest.fixture(scope="session")
async def kafka(broker: Settings) -> AsyncIterator[Settings]:
    """Settings whose topics exist on the broker, unique to this test session."""
    prefix = f"test-{uuid.uuid4().hex[:8]}."
    settings = settings_for(prefix)
    await ensure_topics(settings)
    yield settings
    await delete_topics_with_prefix(settings, prefix)


async def delete_topics_with_prefix(settings: Settings, prefix: str) -> None:
    admin = admin_client(settings)
    await admin.start()
    try:
        doomed = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
