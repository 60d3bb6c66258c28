"""Creating and checking Aftercare's topics.

``aftercare topics create`` makes every topic that is missing, with the configured partition counts
and replication factor, and then checks the layout the pipeline depends on:

- the input topics (purchases, shipments, app-usage, preferences) and the worker's internal
  due-notices are co-partitioned: the same partition count, so that with the same key
  (customer_id) all of a customer's events reach the same worker and the same table partition;
- ``preferences`` is compacted, so the latest preferences of every customer are kept for ever;
- the worker's internal changelog topic (``<worker id>-customers-changelog``, from which its table
  recovers) exists before any worker starts, compacted, co-partitioned with the inputs and with
  the configured replication factor. Faust would create it itself, but only once a worker has
  partitions, racing the first event: on a cluster the worker's loop then died on a changelog
  with "0 partitions" while the process stayed up.

Creation returns before every broker knows the new topics and their configs, so what was just
created is read back, polling with a deadline, until the metadata and the configs agree.

A layout that breaks these is a :class:`TopicLayoutError` naming the topics, their counts and the
fix; the worker runs the same check at start and refuses to run on a broken layout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
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
    role: TopicRole | None  # None: the worker's changelog
    name: str
    partitions: int
    created: bool
    cleanup_policy: str
    replicas: int = 0


@dataclass(frozen=True)
class TopicSpec:
    """A topic as ``topics create`` makes it."""

    role: TopicRole | None
    name: str
    partitions: int
    configs: dict[str, str]


def wanted_topics(settings: Settings) -> list[TopicSpec]:
    """Every topic the pipeline needs, its internal changelog included."""
    specs = [
        TopicSpec(
            role, settings.topic(role), wanted_partitions(settings, role), topic_configs(role)
        )
        for role in TopicRole
    ]
    # Faust's own settings for a table's changelog: compacted, one partition per table partition.
    specs.append(
        TopicSpec(
            None, settings.changelog_topic, settings.input_partitions, {"cleanup.policy": "compact"}
        )
    )
    return specs


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


async def topic_partitions(settings: Settings, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of ``topics``, as the cluster describes them."""
    admin = admin_client(settings)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic.get("partitions") or []
    ]


async def ensure_topics(settings: Settings, *, timeout: float = 30.0) -> list[TopicState]:
    """Create the missing topics, then check the layout. Safe to run any number of times."""
    admin = admin_client(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in wanted_topics(settings) if spec.name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=spec.name,
                        num_partitions=spec.partitions,
                        replication_factor=settings.replication_factor,
                        topic_configs=spec.configs,
                    )
                    for spec in missing
                ]
            )
            errors = _topic_errors(response)
            failures = [
                f"{name}: {message or f'error code {code}'}"
                for name, code, message in errors
                if code not in (0, _TOPIC_ALREADY_EXISTS)
            ]
            if failures:
                raise TopicLayoutError("could not create topics: " + "; ".join(failures))
            # "Already exists": made since we listed, by someone else or by the client's own
            # retry of this request (seen on a cluster that had just started). Reported as
            # existing, but waited for like the rest.
            created = {name for name, code, _ in errors if code == 0}
        else:
            created = set()
        # Creation returns before every broker's metadata shows the new topics and their
        # configs: read them back until they agree, or the deadline passes.
        missing_names = {spec.name for spec in missing}
        deadline = asyncio.get_running_loop().time() + timeout
        await _wait_until_visible(admin, settings, missing_names, timeout)
        while True:
            # Each request may be answered by another broker, and one that has not caught up
            # yet says "missing": what was just created is read again until the deadline.
            try:
                return await _read_and_check(admin, settings, created=created)
            except TopicLayoutError as error:
                late = missing_names and "topics missing" in str(error)
                if not late or asyncio.get_running_loop().time() >= deadline:
                    raise
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def check_topics(settings: Settings) -> list[TopicState]:
    """Check that every topic exists and the layout is one the pipeline can work with."""
    admin = admin_client(settings)
    await admin.start()
    try:
        return await _read_and_check(admin, settings, created=set())
    finally:
        await admin.close()


async def _wait_until_visible(
    admin: AIOKafkaAdminClient, settings: Settings, created: set[str], timeout: float
) -> None:
    """Poll until every topic in ``created`` has a leader for each partition and reads back the
    cleanup policy it was asked for: brokers learn of both a little after creation returns. At
    the deadline the layout check that follows says what is still wrong."""
    specs = [spec for spec in wanted_topics(settings) if spec.name in created]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    agreed = 0
    while True:
        names = [spec.name for spec in specs]
        layout = await _partition_layout(admin, names)
        policies = await _cleanup_policies(admin, [n for n in names if n in layout])
        pending = [
            spec.name
            for spec in specs
            if spec.name not in layout
            or policies.get(spec.name) != spec.configs.get("cleanup.policy", "delete")
        ]
        if not pending:
            agreed += 1
            if agreed >= 3:  # three answers in a row, likely from different brokers
                return
        else:
            agreed = 0
        if loop.time() >= deadline:
            return
        await asyncio.sleep(0.2)


async def _read_and_check(
    admin: AIOKafkaAdminClient, settings: Settings, *, created: set[str]
) -> list[TopicState]:
    specs = wanted_topics(settings)
    names = [spec.name for spec in specs]
    layout = await _partition_layout(admin, names)
    missing = [name for name in names if name not in layout]
    if missing:
        raise TopicLayoutError(
            f"topics missing on {settings.bootstrap_servers}: {', '.join(missing)}; "
            "run `aftercare topics create`"
        )
    policies = await _cleanup_policies(admin, names)
    states = [
        TopicState(
            role=spec.role,
            name=spec.name,
            partitions=layout[spec.name][0],
            created=spec.name in created,
            cleanup_policy=policies.get(spec.name, "delete"),
            replicas=layout[spec.name][1],
        )
        for spec in specs
    ]
    check_layout(states, replication_factor=settings.replication_factor)
    return states


def check_layout(states: list[TopicState], *, replication_factor: int = 1) -> None:
    """Raise :class:`TopicLayoutError` unless inputs are co-partitioned, preferences compacted,
    and the worker's changelog is compacted, co-partitioned and replicated as configured."""
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
    for state in states:
        if state.role is not None:
            continue
        problem = None
        if inputs and state.partitions != inputs[0].partitions:
            problem = (
                f"has {state.partitions} partitions and the inputs have {inputs[0].partitions}; "
                "the table's partitions must match the inputs'"
            )
        elif "compact" not in state.cleanup_policy:
            problem = (
                f"has cleanup.policy={state.cleanup_policy}; it must be compact, or customers' "
                "journey state is deleted after the retention period"
            )
        elif 0 < state.replicas < replication_factor:
            problem = (
                f"has {state.replicas} replicas and AFTERCARE_REPLICATION_FACTOR is "
                f"{replication_factor}; a lost broker would lose journey state"
            )
        if problem:
            raise TopicLayoutError(
                f"the worker's changelog topic {state.name} {problem}. Fix: delete it while no "
                "worker runs and run `aftercare topics create` (the table recovers from it, so "
                "workers then start from empty state), or alter it with kafka-topics/kafka-configs"
            )


async def _partition_layout(
    admin: AIOKafkaAdminClient, names: list[str]
) -> dict[str, tuple[int, int]]:
    """(partitions, fewest replicas of any partition) of each topic whose every partition has a
    leader: a topic still being created reads as missing."""
    layout: dict[str, tuple[int, int]] = {}
    for topic in await admin.describe_topics(names):
        partitions = topic.get("partitions") or []
        if (
            topic.get("error_code", 0) == 0
            and partitions
            and all(p.get("leader", -1) >= 0 for p in partitions)
        ):
            replicas = min(len(p.get("replicas") or ()) for p in partitions)
            layout[topic["topic"]] = (len(partitions), replicas)
    return layout


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
