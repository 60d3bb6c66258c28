"""``aftercare produce``: JSON lines on stdin, checked as the worker would, onto the topics.

A line is one of two things:

- a **bare record**, ``{"event_id": ..., "customer_id": ..., ...}``: the fields of the topic's
  record, for ``aftercare produce TOPIC``;
- an **envelope**, ``{"topic": "purchases", "record": {...}}``: a JSON object with exactly those
  two keys, as ``aftercare simulate --dry-run`` prints them. ``topic`` is a topic role
  (``purchases``) or the topic's full name (with ``AFTERCARE_TOPIC_PREFIX``).

Without TOPIC every line must be an envelope of one of the four input topics, and each goes to
its topic. With TOPIC a line may be either: bare records and envelopes of TOPIC are sent to it,
envelopes of other topics are skipped (counted in the summary), so ``aftercare simulate --dry-run |
aftercare produce purchases`` sends the purchases alone. No Aftercare record has a field named
``topic`` or ``record``, so the two forms cannot be mistaken for one another.

Every line is encoded to Avro and, on an input topic, admitted by the worker's own rules
(:mod:`pipeline.validation`); a line that fails is reported as ``line N: not sent: <reason>`` on
stderr and the rest go on. The exit status is 1 if any line was refused.

Sends are not awaited one by one (a round trip each would take minutes for a dry run of the
default population): up to :data:`IN_FLIGHT` records are handed to the producer before their
acknowledgements are awaited, in order. Ordering per customer holds, since a customer's records
share a key, so a partition, and aiokafka keeps one request per partition in flight.

:func:`route` and :func:`summary` are pure; :func:`produce_lines` does the I/O.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter, deque
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TextIO

from pipeline.names import INPUT_ROLES, RECORD_OF_TOPIC, TopicRole

if TYPE_CHECKING:
    from pipeline.config import Settings

IN_FLIGHT = 1000  # records handed to the producer before the oldest acknowledgement is awaited
ENVELOPE_KEYS = frozenset({"topic", "record"})
SHOWN = 60  # characters of a line's topic a reason quotes


@dataclass(frozen=True)
class Send:
    """A line to encode, check and send to ``role``'s topic; ``record`` is its JSON value."""

    role: TopicRole
    record: Any


@dataclass(frozen=True)
class Skip:
    """An envelope of another topic than the one asked for."""

    role: TopicRole


@dataclass(frozen=True)
class Refuse:
    reason: str


def route(
    line: str | bytes, *, topic: TopicRole | None, topics: Mapping[str, TopicRole]
) -> Send | Skip | Refuse:
    """What to do with one line: ``topic`` is the TOPIC given (None: route envelopes), ``topics``
    every name a line may give a topic by (roles and full names)."""
    try:
        value = json.loads(line)
    except ValueError as exc:
        return Refuse(f"not JSON: {exc}")
    if not (isinstance(value, dict) and value.keys() >= ENVELOPE_KEYS):
        if topic is None and not isinstance(value, dict):
            return Refuse(f"not a JSON object but {type(value).__name__}: expected an envelope")
        if topic is None:
            return Refuse(
                "a bare record, and no TOPIC to send it to: give one (`aftercare produce "
                'purchases`) or wrap each line as {"topic": "purchases", "record": {...}}, '
                "as `aftercare simulate --dry-run` prints them"
            )
        return Send(topic, value)
    extra = sorted(value.keys() - ENVELOPE_KEYS)
    if extra:
        return Refuse(f"an envelope has only topic and record; this line also has {extra}")
    named = value["topic"]
    role = topics.get(named) if isinstance(named, str) else None
    if topic is None and role not in INPUT_ROLES:
        inputs = ", ".join(each.value for each in INPUT_ROLES)
        hint = "; to send it anyway, give it as TOPIC" if role is not None else ""
        return Refuse(
            f"envelope topic {str(named)[:SHOWN]!r} is not an input topic ({inputs}){hint}"
        )
    if role is None:
        return Refuse(f"envelope topic {str(named)[:SHOWN]!r} is not one of Aftercare's topics")
    if topic is not None and role is not topic:
        return Skip(role)
    return Send(role, value["record"])


@dataclass
class Tally:
    """What became of the lines read."""

    sent: Counter[TopicRole] = field(default_factory=Counter)
    skipped: int = 0
    refused: int = 0


def summary(tally: Tally, topic: TopicRole | None, names: Mapping[TopicRole, str]) -> str:
    """The last line: ``sent 120 record(s) to purchases; skipped 380 of other topics``."""
    total = sum(tally.sent.values())
    if topic is not None:
        line = f"sent {total} record(s) to {names[topic]}"
    else:
        line = f"sent {total} record(s)"
        if total:
            line += ": " + ", ".join(
                f"{tally.sent[role]} to {names[role]}" for role in TopicRole if tally.sent[role]
            )
    if tally.skipped:
        line += f"; skipped {tally.skipped} of other topics"
    if tally.refused:
        line += f"; refused {tally.refused}"
    return line


async def produce_lines(
    settings: Settings,
    topic: TopicRole | None,
    lines: AsyncIterable[str | bytes],
    *,
    err: TextIO,
) -> Tally:
    """Route, check and send ``lines`` (numbered from 1 in refusals on ``err``); the tally."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from pipeline.clock import SystemClock
    from pipeline.codec import CodecError, SchemaSet
    from pipeline.intake import DeadLetter, SourceRecord, admit
    from pipeline.jsonio import from_json

    schemas = SchemaSet.load()
    clock = SystemClock()
    max_future = timedelta(seconds=settings.max_future_seconds)
    topics = {name: role for role in TopicRole for name in (role.value, settings.topic(role))}
    tally = Tally()
    in_flight: deque[tuple[int, TopicRole, asyncio.Future[Any]]] = deque()

    def refuse(number: int, reason: str) -> None:
        print(f"line {number}: not sent: {reason}", file=err)
        tally.refused += 1

    async def settle(keep: int) -> None:
        """Await acknowledgements, oldest first, until at most ``keep`` are in flight."""
        while len(in_flight) > keep:
            number, role, future = in_flight.popleft()
            try:
                await future
            except KafkaError as exc:  # this record refused by the broker; the others go on
                refuse(number, f"the broker refused it: {exc!r}")
            else:
                tally.sent[role] += 1

    producer = AIOKafkaProducer(
        client_id=f"{settings.client_id}-cli",
        acks="all",
        linger_ms=10,
        **settings.kafka_client_kwargs(),
    )
    try:
        await producer.start()  # inside: a producer that never connected is closed too
        number = 0
        async for line in lines:
            number += 1
            if not line.strip():
                continue
            routed = route(line, topic=topic, topics=topics)
            if isinstance(routed, Skip):
                tally.skipped += 1
                continue
            if isinstance(routed, Refuse):
                refuse(number, routed.reason)
                continue
            role, name = routed.role, settings.topic(routed.role)
            full_name = RECORD_OF_TOPIC[role]
            try:
                record = from_json(schemas.current(full_name).parsed, routed.record)
                value = schemas.encode(full_name, record)
            except (ValueError, CodecError) as exc:
                refuse(number, str(exc))
                continue
            key = str(record.get("customer_id", "")).encode("utf-8")
            if role in INPUT_ROLES:
                # The same rules the worker applies, so a producer learns of a bad event here.
                verdict = admit(
                    schemas,
                    role,
                    SourceRecord(name, -1, -1, key, value),
                    now=clock.now(),
                    max_future=max_future,
                    consumer="cli",
                )
                if isinstance(verdict, DeadLetter):
                    refuse(number, verdict.reason)
                    continue
            in_flight.append((number, role, await producer.send(name, value=value, key=key)))
            await settle(IN_FLIGHT)
        await producer.flush()
        await settle(0)
    finally:
        await producer.stop()
    return tally


async def produce_stdin(settings: Settings, topic: TopicRole | None) -> int:
    """``aftercare produce [TOPIC]``: stdin to the topics, the summary on stdout; exit status."""
    tally = await produce_lines(settings, topic, _stdin_lines(), err=sys.stderr)
    names = {role: settings.topic(role) for role in TopicRole}
    print(summary(tally, topic, names))
    return 1 if tally.refused else 0


async def _stdin_lines() -> AsyncIterator[bytes]:
    """Lines of stdin, read off the event loop (so that the producer sends while a slow writer,
    a person typing or a paced pipe, takes its time) and a chunk at a time: whatever the pipe
    holds, up to 1 MiB, per trip to the reading thread."""
    fd = sys.stdin.fileno()
    pending = b""
    while chunk := await asyncio.to_thread(os.read, fd, 1 << 20):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            yield line  # bytes: json.loads decodes them, and says so if they are not UTF-8
    if pending:
        yield pending
