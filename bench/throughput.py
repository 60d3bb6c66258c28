"""Part 1: events per second through one worker, against a raw Kafka passthrough on the same topics.

    .venv/bin/python -m bench.throughput          (BENCH_QUICK=1 for a smoke run)

The worker (RocksDB table, at-least-once, as ``aftercare worker`` runs it) is timed from ready
until its committed offsets reach the end of every input topic. The event count is picked from a
warm-up: a small population goes through first, its rate sizes the measured backlog to about
``WINDOW_SECONDS`` of work, and the worker is restarted on that backlog (its table kept) so that the
measurement starts from ready with everything waiting.

The raw passthrough is what Kafka and aiokafka alone manage on this machine: a consumer group reads
the same input topics (every record of both populations), produces each record's key and bytes to
an output topic, waits for the broker's acknowledgements and commits, batch after batch. Timed
from its first batch until its last commit. ``ratio_to_raw`` is worker / raw.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import NewTopic

from bench import profile
from bench.common import (
    PARTITIONS,
    Offsets,
    Scratch,
    Stopwatch,
    cores,
    ensure_broker,
    process_rss,
    quick,
    write_part,
)
from bench.population import START, population
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.topics import admin_client, ensure_topics
from tests.integration.processes import ComponentProcess

EVENTS_PER_CUSTOMER = 6  # what bench.population makes
WINDOW_SECONDS = 30.0  # the worker's measured run, at the warm-up's rate
QUICK_WINDOW_SECONDS = 5.0
RAW_SECONDS = 15.0  # the passthrough runs over the same records again until this long
QUICK_RAW_SECONDS = 2.0
TIMEOUT_SECONDS = 300.0  # a run that does not finish by then is reported as it stands


async def produce_population(settings: Settings, customers: int, first: int) -> int:
    """Produce a population's events to the input topics; how many."""
    schemas = SchemaSet.load()
    events = population(customers, first=first)
    producer = AIOKafkaProducer(linger_ms=5, **settings.kafka_client_kwargs())
    await producer.start()
    try:
        for role, record in events:
            value = schemas.encode(RECORD_OF_TOPIC[role], record)
            key = record["customer_id"].encode()
            await producer.send(settings.topic(role), value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return len(events)


async def drain(
    offsets: Offsets, worker: ComponentProcess, group: str, topics: list[str], target: int
) -> tuple[int, float]:
    """Wait until ``group`` has committed ``target`` records of ``topics`` (or the timeout);
    (committed, seconds)."""
    clock = Stopwatch()
    done = await offsets.committed(group, topics)
    while done < target and clock() < TIMEOUT_SECONDS:
        assert worker.process is not None
        if worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited during the run:\n{worker.tail()}")
        await asyncio.sleep(0.25)
        done = await offsets.committed(group, topics)
    return done, clock()


async def profiled_run(
    settings: Settings,
    offsets: Offsets,
    worker: ComponentProcess,
    topics: list[str],
    first: int,
    customers: int,
) -> dict[str, Any]:
    """Drain one more backlog with py-spy on the worker: CPU µs per event of each layer."""
    await produce_population(settings, customers, first=first)
    total = await offsets.end(topics)
    before = await offsets.committed(settings.worker_id, topics)
    worker.start()
    await worker.wait_ready()
    assert worker.process is not None
    pid = worker.process.pid
    cpu_before = profile.cpu_seconds(pid)
    spy = await profile.Profile.attach(pid, TIMEOUT_SECONDS)
    done, seconds = await drain(offsets, worker, settings.worker_id, topics, total)
    cpu = profile.cpu_seconds(pid) - cpu_before
    samples = await spy.stop()
    worker.stop()
    if spy.error is not None:
        return {"layer_error": spy.error}
    keep = os.environ.get("BENCH_PROFILE_OUT")  # the raw stacks, for a flame graph
    if keep:
        Path(keep).write_text("".join(f"{s} {n}\n" for s, n in samples.items()))  # noqa: ASYNC240
    figures: dict[str, Any] = {
        "layer_events": done - before,
        "layer_events_per_s_profiled": round((done - before) / seconds),
        "layer_samples": sum(samples.values()),
    }
    figures.update(profile.layers(samples, cpu, done - before))
    return figures


async def raw_passthrough(
    settings: Settings, topics: list[str], out_topic: str, total: int, group: str, seconds: float
) -> tuple[int, float]:
    """Consume ``topics`` in a group, produce every record to ``out_topic``, wait for the acks,
    commit; batch after batch, for at least ``seconds`` and at least every record once (at the
    end of the topics it starts again from their beginning). (records, seconds from the first
    batch)."""
    kwargs = settings.kafka_client_kwargs()
    consumer = AIOKafkaConsumer(
        *topics,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kwargs,
    )
    producer = AIOKafkaProducer(acks="all", linger_ms=5, **kwargs)
    await producer.start()
    await consumer.start()
    done = in_pass = 0
    clock: Stopwatch | None = None
    deadline = time.monotonic() + TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            if not batches:
                continue
            if clock is None:
                clock = Stopwatch()
            sent = [
                await producer.send(out_topic, value=message.value, key=message.key)
                for messages in batches.values()
                for message in messages
            ]
            await asyncio.gather(*sent)
            await consumer.commit()
            done += len(sent)
            in_pass += len(sent)
            if in_pass >= total:
                if clock() >= seconds:
                    break
                in_pass = 0
                await consumer.seek_to_beginning()
        return done, clock() if clock is not None else 0.0
    finally:
        await consumer.stop()
        await producer.stop()


async def run(short: bool | None = None) -> dict[str, Any]:
    short = quick() if short is None else short
    ensure_broker()
    scratch = Scratch("tput")
    settings = scratch.settings
    topics = list(settings.input_topics)
    figures: dict[str, Any] = {}
    try:
        await ensure_topics(settings)
        worker = scratch.worker(
            # Two days into the population's three: earlier touchpoints are sent or expire (and
            # are published), later ones are scheduled, as in a live stream.
            AFTERCARE_CLOCK_FACTOR="1",
            AFTERCARE_CLOCK_START=(START + timedelta(days=2)).isoformat(),
            AFTERCARE_MAX_FUTURE_SECONDS=str(10 * 86400),
        )
        async with Offsets(settings) as offsets:
            # Warm-up: a small population, to size the measured run.
            warm_customers = 200 if short else 1000
            warm_events = await produce_population(settings, warm_customers, first=0)
            worker.start()
            await worker.wait_ready()
            figures["worker_rss_bytes_ready"] = process_rss(worker)
            done, seconds = await drain(offsets, worker, settings.worker_id, topics, warm_events)
            warm_rate = done / seconds if seconds > 0 else 0.0
            figures["warmup_events"] = warm_events
            figures["warmup_events_per_s"] = round(warm_rate)
            worker.stop()  # SIGTERM: offsets committed, table flushed

            # The measured backlog: about WINDOW_SECONDS of work at the warm-up's rate.
            window = QUICK_WINDOW_SECONDS if short else WINDOW_SECONDS
            customers = int(max(warm_rate, 200.0) * window / EVENTS_PER_CUSTOMER)
            customers = min(max(customers, 300), 100_000)
            producing = Stopwatch()
            events = await produce_population(settings, customers, first=warm_customers)
            figures["produce_events_per_s"] = round(events / producing())
            total = await offsets.end(topics)
            before = await offsets.committed(settings.worker_id, topics)
            worker.start()
            figures["worker_start_seconds"] = round(await worker.wait_ready(), 2)
            done, seconds = await drain(offsets, worker, settings.worker_id, topics, total)
            worker.stop()
            figures["worker_events"] = done - before
            figures["worker_seconds"] = round(seconds, 2)
            figures["worker_events_per_s"] = round((done - before) / seconds)
            if done < total:
                figures["worker_unfinished_events"] = total - done
            outputs = [settings.topic(TopicRole.DISPATCH), settings.topic(TopicRole.DELIVERIES)]
            figures["worker_records_published"] = await offsets.end(outputs)

            # Where the CPU goes: a further backlog, drained under a sampling profile.
            figures.update(
                await profiled_run(
                    settings,
                    offsets,
                    worker,
                    topics,
                    first=warm_customers + customers,
                    customers=max(customers // 3, 300),
                )
            )

            # The raw passthrough on the same topics: every record, both populations.
            out_topic = f"{scratch.prefix}raw-passthrough"
            admin = admin_client(settings)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(out_topic, PARTITIONS, 1)])
            finally:
                await admin.close()
            raw_done, raw_seconds = await raw_passthrough(
                settings,
                topics,
                out_topic,
                total,
                f"{scratch.prefix}raw-passthrough",
                QUICK_RAW_SECONDS if short else RAW_SECONDS,
            )
            figures["raw_passthrough_events"] = raw_done
            figures["raw_passthrough_seconds"] = round(raw_seconds, 2)
            figures["raw_passthrough_events_per_s"] = round(raw_done / raw_seconds)
            figures["ratio_to_raw"] = round(
                figures["worker_events_per_s"] / figures["raw_passthrough_events_per_s"], 4
            )
            figures["input_partitions"] = PARTITIONS
            figures["cores"] = cores()
    except Exception as exc:  # keep what was measured before it
        figures["throughput_error"] = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        await scratch.cleanup()
    return figures


def main() -> None:
    write_part("throughput", asyncio.run(run()))


if __name__ == "__main__":
    main()
