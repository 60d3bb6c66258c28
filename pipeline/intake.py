"""The intake: every record read from an input topic is either used or dead-lettered, never lost.

What is an intake? It is the one door through which Kafka records become events. :func:`admit` looks
at one raw record (topic, partition, offset, key, value, headers) and answers with either an
:class:`Admitted` event, ready for the journey engine, or a :class:`DeadLetter` that says what is
wrong in words the producing team can act on. It is pure and it never raises, whatever the bytes:
a record can fail, a consumer cannot.

:class:`Intake` adds the one side effect: it publishes dead letters to the ``dead-letters`` topic,
with the original key, value and headers, and waits for the broker to acknowledge them before the
caller moves on (and later commits the offset), so a bad record is stored before it is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.clock import Clock
from pipeline.codec import DeadLetterError, DecodeError, SchemaSet
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.privacy import mask_addresses_in
from pipeline.records import Publisher
from pipeline.validation import key_mismatch, problems

log = logging.getLogger(__name__)

DEAD_LETTER = RECORD_OF_TOPIC[TopicRole.DEAD_LETTERS]


@dataclass(frozen=True)
class SourceRecord:
    """A Kafka record exactly as it was read."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None
    headers: Sequence[tuple[str, bytes | None]] = ()

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class Admitted:
    """A valid input event: ``record`` is the decoded Avro record, timestamps as datetimes."""

    role: TopicRole
    full_name: str
    record: dict[str, Any]
    source: SourceRecord


@dataclass(frozen=True)
class Tombstone:
    """A null value on the compacted ``preferences`` topic: forget this customer's preferences."""

    customer_id: str
    source: SourceRecord


@dataclass(frozen=True)
class DeadLetter:
    source: SourceRecord
    error: DeadLetterError
    reason: str
    at: datetime
    fingerprint: str | None = None
    consumer: str = "worker"

    @property
    def event_id(self) -> str:
        return f"{self.source.topic}:{self.source.partition}:{self.source.offset}"

    def to_record(self) -> dict[str, Any]:
        """The DeadLetter Avro record."""
        source = self.source
        return {
            "event_id": self.event_id,
            "customer_id": _utf8_or_none(source.key),
            "occurred_at": self.at,
            "source_topic": source.topic,
            "source_partition": source.partition,
            "source_offset": source.offset,
            "source_timestamp": (
                None
                if source.timestamp_ms is None
                else datetime.fromtimestamp(source.timestamp_ms / 1000, UTC)
            ),
            "key": source.key,
            "value": source.value,
            "headers": [{"key": k, "value": v} for k, v in source.headers],
            "error": self.error.value,
            "reason": self.reason,
            "schema_fingerprint": self.fingerprint,
            "consumer": self.consumer,
        }


def admit(
    schemas: SchemaSet,
    role: TopicRole,
    source: SourceRecord,
    *,
    now: datetime,
    max_future: timedelta,
    consumer: str = "worker",
) -> Admitted | Tombstone | DeadLetter:
    """Decode and validate one input record. Never raises."""
    try:
        return _admit(schemas, role, source, now=now, max_future=max_future, consumer=consumer)
    except Exception as exc:  # a bug must not take the consumer down with the record that hit it
        log.exception("unexpected error admitting %s", source.where)
        return DeadLetter(
            source,
            DeadLetterError.UNPROCESSABLE,
            f"unexpected {type(exc).__name__} while decoding: {exc}; please report this record",
            now,
            consumer=consumer,
        )


def _admit(
    schemas: SchemaSet,
    role: TopicRole,
    source: SourceRecord,
    *,
    now: datetime,
    max_future: timedelta,
    consumer: str,
) -> Admitted | Tombstone | DeadLetter:
    expected = RECORD_OF_TOPIC[role]
    if source.value is None and role is TopicRole.PREFERENCES:
        customer_id = _utf8_or_none(source.key)
        if customer_id and customer_id.strip():
            return Tombstone(customer_id, source)
        return DeadLetter(
            source,
            DeadLetterError.INVALID,
            "a tombstone (null value) on preferences needs the customer_id as its key",
            now,
            consumer=consumer,
        )
    try:
        decoded = schemas.decode(source.value, expected)
    except DecodeError as exc:
        return DeadLetter(source, exc.kind, exc.reason, now, exc.fingerprint, consumer)
    record = decoded.record
    fingerprint = decoded.writer.fingerprint.hex()
    found = next(problems(expected, record, now=now, max_future=max_future), None)
    if found is not None:
        return DeadLetter(source, DeadLetterError.INVALID, found, now, fingerprint, consumer)
    mismatch = key_mismatch(source.key, record["customer_id"])
    if mismatch is not None:
        return DeadLetter(
            source, DeadLetterError.KEY_MISMATCH, mismatch, now, fingerprint, consumer
        )
    return Admitted(role, expected, record, source)


@dataclass
class Intake:
    """:func:`admit` plus publishing of dead letters. One per consumer process."""

    schemas: SchemaSet
    topics: dict[str, TopicRole]  # input topic name -> role
    dead_letter_topic: str
    publisher: Publisher
    clock: Clock
    max_future: timedelta
    consumer: str = "worker"
    dead_lettered: int = field(default=0, init=False)

    def judge(self, source: SourceRecord) -> Admitted | Tombstone | DeadLetter:
        """What ``source`` is: an event to use, a tombstone, or a dead letter (nothing sent)."""
        role = self.topics.get(source.topic)
        now = self.clock.now()
        if role is None:
            return DeadLetter(
                source,
                DeadLetterError.WRONG_TOPIC,
                f"{source.topic!r} is not an input topic of this consumer",
                now,
                consumer=self.consumer,
            )
        return admit(
            self.schemas,
            role,
            source,
            now=now,
            max_future=self.max_future,
            consumer=self.consumer,
        )

    async def take(self, source: SourceRecord) -> Admitted | Tombstone | None:
        """The event in ``source``, or None once its dead letter is safely on the broker."""
        verdict = self.judge(source)
        if not isinstance(verdict, DeadLetter):
            return verdict
        await self.dead_letter(verdict)
        return None

    def letter(self, letter: DeadLetter) -> tuple[str, bytes | None, bytes]:
        """``(topic, key, value)`` of a dead letter, for a caller that publishes it with more."""
        log.warning(  # the reason may quote an address or number: masked here, whole in the letter
            "dead-lettered %s: %s: %s",
            letter.source.where,
            letter.error.value,
            mask_addresses_in(letter.reason),
        )
        self.dead_lettered += 1
        value = self.schemas.encode(DEAD_LETTER, letter.to_record())
        return self.dead_letter_topic, letter.source.key, value

    async def dead_letter(self, letter: DeadLetter) -> None:
        topic, key, value = self.letter(letter)
        await self.publisher.send_and_wait(topic, value=value, key=key)


def _utf8_or_none(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None
