"""Shared fixtures.

The ``kafka`` fixture gives integration tests a real broker: the cluster in
``KAFKA_BOOTSTRAP_SERVERS`` if set, else the local Apache Kafka broker, started once per session
(and stopped at the end if this session started it). Each session works on its own topics, named
with a unique prefix and deleted at the end, so runs never see each other's records.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pipeline import localkafka
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.sandbox.server import Sandbox, SandboxConfig
from pipeline.topics import ensure_topics
from tests.support import delete_topics_with_prefix, settings_for

# On a cluster of one's own the senders refuse the sandbox's signing key: every process the tests
# start gets this session's own (they inherit the environment).
if os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip():
    os.environ.setdefault("AFTERCARE_PREFERENCES_KEY", secrets.token_urlsafe(32))


@pytest.fixture(scope="session")
def schemas() -> SchemaSet:
    return SchemaSet.load()


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """The provider sandbox on free ports, with its own outbox; deterministic faults."""
    box = Sandbox(
        SandboxConfig(http_port=0, smtp_port=0, db_path=tmp_path / "outbox.sqlite", seed=1)
    )
    await box.start()
    yield box
    await box.stop()


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
