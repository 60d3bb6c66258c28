"""Creating and checking Aftercare's topics.

``aftercare topics create`` makes every topic that is missing, with the configured partition counts
and replication factor, and then checks the layout the pipeline depends on:

- the input topics (purchases, shipments, app-usage, preferences) and the worker's internal
  due-notices are co-partitioned: the same partition count, so that with the same key
  (customer_id) all of a customer's events reach the same worker and the same table partition;
- ``preferences`` is compacted, so the latest preferences of every customer are kept for ever.

A layout that breaks these is a :class:`TopicLayoutError` naming the topics, their counts and the
fix; the worker runs the same check at start and refuses to run on a broken layout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from pipeline.config import Settings
from pipeline.names import COPARTITIONED_ROLES, TopicRole

# Kafka's error code for a topic that already exists; every other non-zero code is a failure.
_TOPIC_ALREADY_EXISTS = 36
_THIRTY_DAYS_MS = str(30 * 24 * 3600 * 1000)

# Dead letters wrap the original record, so they may be a little larger than it.
DEAD_LETTER_MAX_BYTES = 4 * 1024 * 1024


class TopicLayoutError(RuntimeError):
    """Topics are missing or laid out in a way the pipeline cannot work with."""


@dataclass(frozen=True)
class TopicState:
    role: TopicRole
    name: str
    partitions: int
    created: bool
    cleanup_policy: str


def topic_configs(role: TopicRole) -> dict[str, str]:
    """Topic-level settings Aftercare asks for when it creates a topic."""
    if role is TopicRole.PREFERENCES:
        return {"cleanup.policy": "compact"}
    if role is TopicRole.DELIVERIES:
        # Analysts report over weeks; the broker default (7 days) is too short.
        return {"retention.ms": _THIRTY_DAYS_MS}
    if role is TopicRole.DEAD_LETTERS:
        return {"retention.ms": _THIRTY_DAYS_MS, "max.message.bytes": str(DEAD_LETTER_MAX_BYTES)}
    if role is TopicRole.DUE_NOTICES:
        return {"retention.ms": str(24 * 3600 * 1000)}  # a notice matters for seconds
    return {}


def wanted_partitions(settings: Settings, role: TopicRole) -> int:
    return settings.input_partitions if role in COPARTITIONED_ROLES else settings.output_partitions


def admin_client(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        client_id=f"{settings.client_id}-admin", **settings.kafka_client_kwargs()
    )


async def ensure_topics(settings: Settings) -> list[TopicState]:
    """Create the missing topics, then check the layout. Safe to run any number of times."""
    admin = admin_client(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [role for role in TopicRole if settings.topic(role) not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=settings.topic(role),
                        num_partitions=wanted_partitions(settings, role),
                        replication_factor=settings.replication_factor,
                        topic_configs=topic_configs(role),
                    )
                    for role in missing
                ]
            )
            failures = [
                f"{name}: {message or f'error code {code}'}"
                for name, code, message in _topic_errors(response)
                if code not in (0, _TOPIC_ALREADY_EXISTS)
            ]
            if failures:
                raise TopicLayoutError("could not create topics: " + "; ".join(failures))
            # Creation returns before every broker's metadata shows the new topics.
            await _wait_for_leaders(admin, [settings.topic(role) for role in missing])
        return await _check(admin, settings, created={settings.topic(r) for r in missing})
    finally:
        await admin.close()


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30.0
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        pending = set(names)
        for topic in await admin.describe_topics(names):
            partitions = topic.get("partitions") or []
            if (
                topic.get("error_code", 0) == 0
                and partitions
                and all(p.get("leader", -1) >= 0 for p in partitions)
            ):
                pending.discard(topic["topic"])
        if not pending:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TopicLayoutError(
                f"created {', '.join(sorted(pending))} but they have no partition leaders after "
                f"{timeout:.0f} s; check the brokers' health"
            )
        await asyncio.sleep(0.1)


async def check_topics(settings: Settings) -> list[TopicState]:
    """Check that every topic exists and the layout is one the pipeline can work with."""
    admin = admin_client(settings)
    await admin.start()
    try:
        return await _check(admin, settings, created=set())
    finally:
        await admin.close()


async def _check(
    admin: AIOKafkaAdminClient, settings: Settings, *, created: set[str]
) -> list[TopicState]:
    names = [settings.topic(role) for role in TopicRole]
    counts = await _partition_counts(admin, names)
    missing = [name for name in names if name not in counts]
    if missing:
        raise TopicLayoutError(
            f"topics missing on {settings.bootstrap_servers}: {', '.join(missing)}; "
            "run `aftercare topics create`"
        )
    policies = await _cleanup_policies(admin, names)
    states = [
        TopicState(
            role=role,
            name=settings.topic(role),
            partitions=counts[settings.topic(role)],
            created=settings.topic(role) in created,
            cleanup_policy=policies.get(settings.topic(role), "delete"),
        )
        for role in TopicRole
    ]
    check_layout(states)
    return states


def check_layout(states: list[TopicState]) -> None:
    """Raise :class:`TopicLayoutError` unless inputs are co-partitioned, preferences compacted."""
    inputs = [state for state in states if state.role in COPARTITIONED_ROLES]
    if len({state.partitions for state in inputs}) > 1:
        listing = ", ".join(f"{state.name} has {state.partitions}" for state in inputs)
        raise TopicLayoutError(
            f"the input topics are not co-partitioned: {listing} partitions. They must have the "
            "same partition count so that all of a customer's events reach the same worker; "
            "add partitions to the smaller ones (kafka-topics --alter --partitions N) or recreate "
            "them, before any worker starts"
        )
    for state in states:
        if state.role is TopicRole.PREFERENCES and "compact" not in state.cleanup_policy:
            raise TopicLayoutError(
                f"{state.name} has cleanup.policy={state.cleanup_policy}; it must be compact, or "
                "customers' preferences (and opt-outs) are deleted after the retention period. "
                f"Fix: kafka-configs --alter --entity-type topics --entity-name {state.name} "
                "--add-config cleanup.policy=compact"
            )


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for topic in await admin.describe_topics(names):
        if topic.get("error_code", 0) == 0 and topic.get("partitions"):
            counts[topic["topic"]] = len(topic["partitions"])
    return counts


async def _cleanup_policies(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, str]:
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None}) for name in names]
    )
    policies: dict[str, str] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            for entry in resource["config_entries"]:
                if entry["config_names"] == "cleanup.policy":
                    policies[resource["resource_name"]] = entry["config_value"]
    return policies


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    errors: list[tuple[str, int, str | None]] = []
    obj: Mapping[str, Any] = response.to_object()
    for entry in obj.get("topic_errors", obj.get("topics", [])):
        name = entry.get("topic", entry.get("name"))
        errors.append((name, entry.get("error_code", 0), entry.get("error_message")))
    return errors
