"""`aftercare topics create`: idempotent, compacted preferences, co-partitioning enforced."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import NewTopic

from pipeline.config import Settings
from pipeline.names import INPUT_ROLES, TopicRole
from pipeline.topics import TopicLayoutError, admin_client, check_topics, ensure_topics
from tests.support import delete_topics_with_prefix, settings_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def fresh(broker: Settings) -> AsyncIterator[Settings]:
    prefix = f"test-{uuid.uuid4().hex[:8]}."
    settings = settings_for(prefix, AFTERCARE_INPUT_PARTITIONS="3", AFTERCARE_OUTPUT_PARTITIONS="2")
    yield settings
    await delete_topics_with_prefix(settings, prefix)


async def _create(settings: Settings, name: str, partitions: int, **configs: str) -> None:
    admin = admin_client(settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
        async with asyncio.timeout(30):  # until the broker that answers listings knows it
            while True:
                if name in await admin.list_topics():
                    break
                await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def test_create_makes_every_topic_once_with_its_layout(fresh: Settings) -> None:
    states = await ensure_topics(fresh)
    first = {state.role: state for state in states if state.role is not None}
    assert set(first) == set(TopicRole)
    (changelog,) = [state for state in states if state.role is None]
    assert changelog.name == f"{fresh.worker_id}-customers-changelog"
    assert changelog.partitions == 3
    assert changelog.cleanup_policy == "compact"
    assert changelog.replicas == fresh.replication_factor
    assert all(state.created for state in first.values())
    assert {first[role].partitions for role in INPUT_ROLES} == {3}
    assert first[TopicRole.DISPATCH].partitions == 2
    assert first[TopicRole.PREFERENCES].cleanup_policy == "compact"
    assert first[TopicRole.PURCHASES].cleanup_policy == "delete"

    again = await ensure_topics(fresh)
    assert not any(state.created for state in again)
    assert [s.partitions for s in again] == [s.partitions for s in states]
    assert [s.name for s in await check_topics(fresh)] == [s.name for s in again]


async def test_input_topics_that_are_not_co_partitioned_are_refused_by_name(
    fresh: Settings,
) -> None:
    shipments = fresh.topic(TopicRole.SHIPMENTS)
    await _create(fresh, shipments, 5)
    with pytest.raises(TopicLayoutError) as caught:
        await ensure_topics(fresh)
    message = str(caught.value)
    assert "not co-partitioned" in message
    assert f"{shipments} has 5" in message
    assert f"{fresh.topic(TopicRole.PURCHASES)} has 3" in message


async def test_preferences_that_are_not_compacted_are_refused(fresh: Settings) -> None:
    await _create(fresh, fresh.topic(TopicRole.PREFERENCES), 3, **{"cleanup.policy": "delete"})
    with pytest.raises(TopicLayoutError, match=r"cleanup\.policy=delete; it must be compact"):
        await ensure_topics(fresh)


async def test_check_names_missing_topics(fresh: Settings) -> None:
    with pytest.raises(TopicLayoutError, match="run `aftercare topics create`"):
        await check_topics(fresh)


async def test_a_changelog_that_does_not_match_the_inputs_is_refused_by_name(
    fresh: Settings,
) -> None:
    await _create(fresh, fresh.changelog_topic, 5, **{"cleanup.policy": "compact"})
    with pytest.raises(TopicLayoutError) as caught:
        await ensure_topics(fresh)
    message = str(caught.value)
    assert f"changelog topic {fresh.changelog_topic} has 5 partitions" in message
    assert "the inputs have 3" in message


async def test_a_changelog_that_is_not_compacted_is_refused(fresh: Settings) -> None:
    await _create(fresh, fresh.changelog_topic, 3, **{"cleanup.policy": "delete"})
    with pytest.raises(TopicLayoutError, match=r"changelog topic .* cleanup\.policy=delete"):
        await ensure_topics(fresh)


async def test_a_worker_without_its_changelog_is_refused(fresh: Settings) -> None:
    await ensure_topics(fresh)
    admin = admin_client(fresh)
    await admin.start()
    try:
        await admin.delete_topics([fresh.changelog_topic])
    finally:
        await admin.close()
    with pytest.raises(TopicLayoutError, match=f"missing .*{fresh.changelog_topic}"):
        await _eventually_missing(fresh)


async def _eventually_missing(settings: Settings) -> None:
    """check_topics, until the deletion has reached the broker it asks (a deadline, no sleep)."""
    async with asyncio.timeout(30):
        while True:
            await check_topics(settings)
            await asyncio.sleep(0.1)
