"""Publishing a simulated population's events to the input topics.

Each event goes to its role's topic, keyed by its customer id (UTF-8) so that a customer's events
share a partition, Avro single-object encoded, acknowledged by every in-sync replica (acks=all).

Three ways to pace it:

- **unpaced** (no clock, no rate): as fast as the broker takes it. Sends are not awaited one by
  one: their acknowledgements are collected in groups, so the producer fills its batches.
- **by a clock**: an event goes out once ``clock.now()`` has reached its ``at``, so a worker on the
  same clock receives it as it "happens". An accelerated clock turns weeks into minutes.
- **by a rate**: at most ``rate`` events per real second (with a clock too, whichever is slower).

Waits are taken in short steps so that setting ``stop`` ends the run promptly; whatever was
handed to the producer is flushed and acknowledged before :func:`produce` returns.

The records keep the broker's own timestamps: stamping them with simulated event times (weeks in
the past or the future) would put them at the mercy of the topics' time-based retention.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from pipeline.clock import Clock
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.names import RECORD_OF_TOPIC
from pipeline.simulate.population import SimEvent

GROUP = 1000  # sends in flight before their acknowledgements are awaited
STEP_SECONDS = 0.2  # the longest single wait: how soon `stop` is noticed
POLL_SECONDS = 0.02  # the shortest wait, when a clock cannot say how long (a ManualClock)
AHEAD_SECONDS = 0.005  # rate limiting: sleep only when this far ahead of the schedule


async def produce(
    settings: Settings,
    events: Iterable[SimEvent],
    *,
    clock: Clock | None = None,
    rate: float | None = None,
    on_sent: Callable[[SimEvent], None] | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Produce ``events`` to their topics; the number acknowledged by the broker.

    ``on_sent`` is called for each event, in order, once the broker has acknowledged it. Returns
    early (after flushing) when ``stop`` is set. A send the broker refuses raises its
    ``aiokafka.errors.KafkaError``.
    """
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be a positive number of events per second, not {rate}")
    schemas = SchemaSet.load()
    paced = clock is not None or rate is not None
    producer = AIOKafkaProducer(
        client_id=f"{settings.client_id}-simulate",
        acks="all",
        linger_ms=0 if paced else 10,
        **settings.kafka_client_kwargs(),
    )
    await producer.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    in_flight: deque[tuple[SimEvent, Awaitable[Any]]] = deque()
    handed = sent = 0
    try:
        for event in events:
            if _stopped(stop):
                break
            if clock is not None and clock.now() < event.at:
                sent += await _settle(in_flight, on_sent)  # report progress before waiting
                if not await _until(clock, event.at, stop):
                    break
            if rate is not None:
                ahead = started + handed / rate - loop.time()
                if ahead > AHEAD_SECONDS and not await _sleep(ahead, stop):
                    break
            value = schemas.encode(RECORD_OF_TOPIC[event.role], event.record)
            future = await producer.send(
                settings.topic(event.role), value=value, key=event.customer_id.encode("utf-8")
            )
            in_flight.append((event, future))
            handed += 1
            if len(in_flight) >= GROUP:
                sent += await _settle(in_flight, on_sent)
            else:
                sent += _settle_done(in_flight, on_sent)
        await producer.flush()
        sent += await _settle(in_flight, on_sent)
    finally:
        await producer.stop()
    return sent


async def _settle(
    in_flight: deque[tuple[SimEvent, Awaitable[Any]]],
    on_sent: Callable[[SimEvent], None] | None,
) -> int:
    """Await every acknowledgement in flight, in order."""
    count = 0
    while in_flight:
        event, future = in_flight.popleft()
        await future
        count += 1
        if on_sent is not None:
            on_sent(event)
    return count


def _settle_done(
    in_flight: deque[tuple[SimEvent, Awaitable[Any]]],
    on_sent: Callable[[SimEvent], None] | None,
) -> int:
    """Take the acknowledgements that have already come, in order, without waiting."""
    count = 0
    while in_flight:
        event, future = in_flight[0]
        if not isinstance(future, asyncio.Future) or not future.done():
            break
        in_flight.popleft()
        future.result()  # raises the broker's refusal, if it was one
        count += 1
        if on_sent is not None:
            on_sent(event)
    return count


async def _until(clock: Clock, moment: datetime, stop: asyncio.Event | None) -> bool:
    """Wait until ``clock`` reads ``moment``; False if ``stop`` was set first."""
    while clock.now() < moment:
        wait = min(max(clock.real_seconds_until(moment), POLL_SECONDS), STEP_SECONDS)
        if not await _sleep(wait, stop):
            return False
    return True


async def _sleep(seconds: float, stop: asyncio.Event | None) -> bool:
    """Sleep up to ``seconds`` in steps; False as soon as ``stop`` is set."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        if _stopped(stop):
            return False
        left = deadline - loop.time()
        if left <= 0:
            return True
        step = min(left, STEP_SECONDS)
        if stop is None:
            await asyncio.sleep(step)
            continue
        try:
            async with asyncio.timeout(step):
                await stop.wait()
        except TimeoutError:
            pass


def _stopped(stop: asyncio.Event | None) -> bool:
    return stop is not None and stop.is_set()
