"""Events per second through one journey worker on the real local broker.

    .venv/bin/python -m bench.bench_worker [customers]

Produces a population's events (about 6 per customer) to fresh topics, then starts one worker
(RocksDB table, at-least-once) and times it from ready until its committed offsets reach the end of
every input topic. Prints a table and writes bench/results/worker.json. A figure, not a test.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench.population import START, population
from pipeline import localkafka
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.names import INPUT_ROLES, RECORD_OF_TOPIC, TopicRole
from pipeline.topics import admin_client, ensure_topics
from tests.integration.kafkatools import end_offsets
from tests.integration.processes import ComponentProcess
from tests.support import delete_topics_with_prefix, free_ports, settings_for

RESULTS = Path(__file__).with_name("results")


async def committed(settings: Settings, group: str) -> int:
    admin = admin_client(settings)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    inputs = set(settings.input_topics)
    return sum(
        meta.offset for tp, meta in offsets.items() if tp.topic in inputs and meta.offset > 0
    )


async def main(customers: int) -> dict[str, float]:
    base = Settings.from_env()
    if base.uses_local_broker:
        localkafka.start(base.local_broker)
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    settings = settings_for(prefix, AFTERCARE_INPUT_PARTITIONS="4", AFTERCARE_OUTPUT_PARTITIONS="4")
    await ensure_topics(settings)
    schemas = SchemaSet.load()
    state_dir = Path(tempfile.mkdtemp(prefix="aftercare-bench-"))
    try:
        events = population(customers)
        producer = AIOKafkaProducer(linger_ms=5, **settings.kafka_client_kwargs())
        await producer.start()
        try:
            for role, record in events:
                value = schemas.encode(RECORD_OF_TOPIC[role], record)
                await producer.send(
                    settings.topic(role), value=value, key=record["customer_id"].encode()
                )
            await producer.flush()
        finally:
            await producer.stop()
        total = 0
        for role in INPUT_ROLES:
            total += sum((await end_offsets(settings, settings.topic(role))).values())

        (port,) = free_ports(1)
        worker = ComponentProcess(
            "worker",
            {
                "AFTERCARE_TOPIC_PREFIX": prefix,
                "AFTERCARE_INPUT_PARTITIONS": "4",
                "AFTERCARE_OUTPUT_PARTITIONS": "4",
                # Two days into the population's three: earlier touchpoints are sent or expire
                # (and are published), later ones are scheduled, as in a live stream.
                "AFTERCARE_CLOCK_FACTOR": "1",
                "AFTERCARE_CLOCK_START": (START + timedelta(days=2)).isoformat(),
                "AFTERCARE_STATE_DIR": str(state_dir),
                "AFTERCARE_WORKER_PORT": str(port),
                "AFTERCARE_LOG_LEVEL": "warning",
                "AFTERCARE_MAX_FUTURE_SECONDS": str(10 * 86400),
            },
            state_dir / "worker.log",
            port,
        )
        worker.start()
        try:
            await worker.wait_ready()
            started = time.monotonic()
            while (done := await committed(settings, settings.worker_id)) < total:
                if time.monotonic() - started > 900:
                    raise TimeoutError(f"only {done} of {total} events after 900 s")
                await asyncio.sleep(0.25)
            elapsed = time.monotonic() - started
        finally:
            worker.stop()
        dispatched = sum((await end_offsets(settings, settings.topic(TopicRole.DISPATCH))).values())
        outcomes = sum((await end_offsets(settings, settings.topic(TopicRole.DELIVERIES))).values())
        result = {
            "customers": customers,
            "events": total,
            "seconds": round(elapsed, 2),
            "worker_events_per_s": round(total / elapsed),
            "dispatched": dispatched,
            "outcomes_recorded": outcomes,
            "cores": os.cpu_count() or 0,
        }
    finally:
        await delete_topics_with_prefix(settings, prefix)
        shutil.rmtree(state_dir, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "worker.json").write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():
        print(f"{key:24} {value:>12,}")
    return result


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5_000))
