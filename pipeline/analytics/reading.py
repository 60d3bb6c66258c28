"""Reading a topic for analysis: every partition, no consumer group, nothing committed.

:func:`read_topic` assigns itself every partition of the topic, starts at the beginning (or at a
point in time, see below) and, unless ``follow`` is set, stops at the end offsets it saw when it
started, so a report covers a fixed set of records even while the pipeline keeps writing. A record
that does not decode is yielded with its :class:`~pipeline.codec.DecodeError` instead of a record;
it never ends the read.

What ``since`` and ``until`` mean
---------------------------------

Both are compared with the record's ``occurred_at``: **pipeline-clock time**, the time the
pipeline decided on the outcome or dispatched the touchpoint. Records with
``since <= occurred_at < until`` are yielded (undecodable ones always are: their time is unknown).

Kafka can only seek by the record's broker timestamp, which is **real (wall-clock) time** when the
producer wrote it. Seeking there is only safe when the pipeline clock does not run ahead of the
wall clock: a record produced at wall time *t* then has ``occurred_at <= t``, so no record with
``occurred_at >= since`` was produced before ``since``. :func:`read_topic` therefore seeks (to
``since`` minus :data:`SEEK_MARGIN`, for clock skew between hosts) only when

- the settings describe a wall clock (``AFTERCARE_CLOCK_FACTOR=1``, no ``AFTERCARE_CLOCK_START``),
  as the pipeline's own settings should be, and
- in each partition, the last record before the landing point has ``occurred_at < since``. A
  pipeline that ran on an accelerated clock (a demo) leaves records whose ``occurred_at`` lies far
  ahead of their broker time; this check catches that even when the reader's settings differ from
  the pipeline's, and that partition is then read from its beginning.

``until`` only filters: a record decided before ``until`` may be produced any time later (a
producer retrying through a broker outage), so no offset is known to be safe to stop at.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.codec import DecodeError, SchemaSet
from pipeline.config import Settings
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.topics import admin_client

# How far before ``since`` a seek by broker timestamp lands: covers clock skew between the host
# that produced a record and the broker (with LogAppendTime) or the host reading it.
SEEK_MARGIN = timedelta(minutes=5)

# How long to wait for the one record per partition that checks a seek is safe.
_PROBE_SECONDS = 15.0


class ReadError(Exception):
    """The topic cannot be read (missing topic, broker away); the message says what to do."""


@dataclass(frozen=True)
class Record:
    """One record of a topic: decoded, or with the reason it could not be."""

    topic: str
    partition: int
    offset: int
    timestamp: datetime  # the broker timestamp: real time, when it was produced
    record: dict[str, Any] | None  # the decoded Avro record; None when ``error`` is set
    error: DecodeError | None = None

    @property
    def where(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


async def read_topic(
    settings: Settings,
    role: TopicRole,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    follow: bool = False,
) -> AsyncGenerator[Record, None]:
    """Every record of the topic of ``role`` (see the module docstring for ``since``/``until``).

    Without ``follow`` the iteration ends at the end offsets seen at the start; with it, it waits
    for new records until the caller stops iterating (or the task is cancelled).
    """
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise ValueError(f"{name}={moment.isoformat()} needs a time zone")
    topic = settings.topic(role)
    full_name = RECORD_OF_TOPIC[role]
    schemas = SchemaSet.load()
    partitions = await _partitions(settings, topic)
    consumer = AIOKafkaConsumer(
        client_id=f"{settings.client_id}-analytics",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **settings.kafka_client_kwargs(),
    )
    try:
        await consumer.start()
    except Exception as exc:  # aiokafka raises KafkaConnectionError and others
        await consumer.stop()
        raise _unreachable(settings, exc) from exc
    try:
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        start = await _start_offsets(consumer, schemas, full_name, settings, end, since)
        for tp in partitions:
            consumer.seek(tp, start[tp])
        pending = {tp for tp in partitions if follow or start[tp] < end[tp]}
        done = set(partitions) - pending
        if done:
            consumer.pause(*done)
        while pending:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, messages in sorted(batches.items()):
                for message in messages:
                    if not follow and message.offset >= end[tp]:
                        break
                    record = _decode(schemas, full_name, message)
                    if _in_range(record, since, until):
                        yield record
            if not follow:
                for tp in list(pending):
                    if await consumer.position(tp) >= end[tp]:
                        pending.discard(tp)
                        consumer.pause(tp)
    finally:
        await consumer.stop()


async def _partitions(settings: Settings, topic: str) -> list[TopicPartition]:
    admin = admin_client(settings)
    try:
        await admin.start()
        (described,) = await admin.describe_topics([topic])
    except Exception as exc:  # aiokafka raises KafkaConnectionError and others
        raise _unreachable(settings, exc) from exc
    finally:
        await admin.close()
    if described.get("error_code") or not described.get("partitions"):
        raise ReadError(
            f"topic {topic} does not exist on {settings.bootstrap_servers}; check "
            "AFTERCARE_TOPIC_PREFIX, or create the topics with `aftercare topics create`"
        )
    return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])


def _unreachable(settings: Settings, exc: Exception) -> ReadError:
    text = str(exc)
    what = text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"
    return ReadError(
        f"cannot reach Kafka at {settings.bootstrap_servers} ({what}); is the broker running "
        "(`aftercare broker status`)?"
    )


def _decode(schemas: SchemaSet, full_name: str, message: Any) -> Record:
    timestamp = datetime.fromtimestamp(message.timestamp / 1000, UTC)
    try:
        decoded = schemas.decode(message.value, full_name)
    except DecodeError as exc:
        return Record(message.topic, message.partition, message.offset, timestamp, None, exc)
    return Record(message.topic, message.partition, message.offset, timestamp, decoded.record)


def _in_range(record: Record, since: datetime | None, until: datetime | None) -> bool:
    if record.record is None:
        return True
    occurred = record.record["occurred_at"]
    return (since is None or occurred >= since) and (until is None or occurred < until)


def _wall_clock(settings: Settings) -> bool:
    return settings.clock_factor == 1 and settings.clock_start is None


async def _start_offsets(
    consumer: AIOKafkaConsumer,
    schemas: SchemaSet,
    full_name: str,
    settings: Settings,
    end: Mapping[TopicPartition, int],
    since: datetime | None,
) -> Mapping[TopicPartition, int]:
    """Where to start in each partition: the beginning, or near ``since`` where that is safe."""
    partitions = list(end)
    beginning: dict[TopicPartition, int] = await consumer.beginning_offsets(partitions)
    if since is None or not _wall_clock(settings):
        return beginning
    target = max(0, int((since - SEEK_MARGIN).timestamp() * 1000))
    found = await consumer.offsets_for_times(dict.fromkeys(partitions, target))
    start = {tp: end[tp] if found[tp] is None else found[tp].offset for tp in partitions}
    probes = {tp: start[tp] - 1 for tp in partitions if start[tp] > beginning[tp]}
    for tp, record in (await _probe(consumer, schemas, full_name, probes)).items():
        if record is None or record.record is None or record.record["occurred_at"] >= since:
            start[tp] = beginning[tp]  # the pipeline clock ran ahead here: read it all
    return start


async def _probe(
    consumer: AIOKafkaConsumer,
    schemas: SchemaSet,
    full_name: str,
    offsets: Mapping[TopicPartition, int],
) -> dict[TopicPartition, Record | None]:
    """The record at each given offset (None where it cannot be had in time)."""
    found: dict[TopicPartition, Record | None] = dict.fromkeys(offsets)
    if not offsets:
        return found
    others = [tp for tp in consumer.assignment() if tp not in offsets]
    if others:
        consumer.pause(*others)
    for tp, offset in offsets.items():
        consumer.seek(tp, offset)
    waiting = set(offsets)
    try:
        async with asyncio.timeout(_PROBE_SECONDS):
            while waiting:
                batches = await consumer.getmany(*waiting, timeout_ms=500)
                for tp, messages in batches.items():
                    if tp in waiting and messages:
                        first = messages[0]
                        # No record at that offset (a transaction marker, say) leaves None: the
                        # next record lies past the landing point and proves nothing.
                        if first.offset == offsets[tp]:
                            found[tp] = _decode(schemas, full_name, first)
                        waiting.discard(tp)
                        consumer.pause(tp)
    except TimeoutError:
        pass  # left as None: those partitions are read from the beginning
    consumer.resume(*consumer.assignment())
    return found
