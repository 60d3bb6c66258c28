"""A real Prometheus scrapes a running worker and senders; an SRE's query gets an answer.

The whole path runs: orders go to ``purchases``, the worker dispatches confirmations, the senders
deliver them to the sandbox's SMTP server, and Prometheus (Debian's package, as `make test`
installs it) scrapes both processes. The p99 end-to-end latency of email is then read through
Prometheus' own HTTP query API, as a dashboard or an alert would.
"""

from __future__ import annotations

import asyncio
import math
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.sandbox.server import Sandbox
from tests.integration.kafkatools import wait_for_new
from tests.integration.processes import ComponentProcess
from tests.samples import purchase
from tests.support import free_ports

pytestmark = pytest.mark.integration

P99_EMAIL = (
    "histogram_quantile(0.99, sum by (le) "
    '(rate(aftercare_end_to_end_latency_seconds_bucket{channel="EMAIL"}[1m])))'
)


async def _query(client: httpx.AsyncClient, base: str, expr: str) -> list[dict[str, Any]]:
    answer = await client.get(f"{base}/api/v1/query", params={"query": expr})
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


async def test_prometheus_reads_p99_email_latency_from_a_running_pipeline(
    topics: Settings,
    sandbox: Sandbox,
    producer: AIOKafkaProducer,
    schemas: SchemaSet,
    tmp_path: Path,
) -> None:
    prometheus_binary = shutil.which("prometheus")
    assert prometheus_binary, "Debian's prometheus package is missing: `make test` installs it"
    worker_port, senders_port, prometheus_port = free_ports(3)
    common = {
        "AFTERCARE_TOPIC_PREFIX": topics.topic_prefix,
        "AFTERCARE_INPUT_PARTITIONS": str(topics.input_partitions),
        "AFTERCARE_OUTPUT_PARTITIONS": str(topics.output_partitions),
        "AFTERCARE_SESSION_TIMEOUT_SECONDS": "6",
        "AFTERCARE_SMTP_PORT": str(sandbox.smtp_port),
        "AFTERCARE_SMTP_USERNAME": sandbox.config.smtp_username,
        "AFTERCARE_SMTP_PASSWORD": sandbox.config.smtp_password,
    }
    worker = ComponentProcess(
        "worker",
        {
            **common,
            "AFTERCARE_WORKER_PORT": str(worker_port),
            "AFTERCARE_STATE_DIR": str(tmp_path / "state"),
        },
        tmp_path / "worker.log",
        worker_port,
    )
    senders = ComponentProcess(
        "senders",
        {**common, "AFTERCARE_SENDERS_PORT": str(senders_port)},
        tmp_path / "senders.log",
        senders_port,
    )
    config = tmp_path / "prometheus.yml"
    jobs = {"aftercare-worker": worker_port, "aftercare-senders": senders_port}
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n"
        + "".join(
            f"  - {{job_name: {job}, static_configs: [{{targets: ['127.0.0.1:{port}']}}]}}\n"
            for job, port in jobs.items()
        )
    )
    prometheus = ComponentProcess(
        "prometheus",
        {},
        tmp_path / "prometheus.log",
        prometheus_port,
        argv=[
            prometheus_binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        ready_path="/-/ready",
    )
    base = f"http://127.0.0.1:{prometheus_port}"
    processes = [worker, senders, prometheus]
    for process in processes:
        process.start()
    try:
        for process in processes:
            await process.wait_ready()
        async with httpx.AsyncClient() as client, asyncio.timeout(30):
            while len(await _query(client, base, 'up{job=~"aftercare-.*"} == 1')) < 2:  # noqa: ASYNC110 - polling Prometheus, not a local event
                await asyncio.sleep(0.2)  # until both have been scraped once
        now = datetime.now(UTC)
        for n in range(30):
            record = purchase(
                event_id=f"p-{n}", customer_id=f"cust-{n}", order_id=f"o-{n}", occurred_at=now
            )
            await producer.send_and_wait(
                topics.topic(TopicRole.PURCHASES),
                value=schemas.encode(RECORD_OF_TOPIC[TopicRole.PURCHASES], record),
                key=record["customer_id"].encode(),
            )
        await wait_for_new(topics, topics.topic(TopicRole.DELIVERIES), {}, 30, timeout=90)

        async with httpx.AsyncClient() as client:
            p99: float | None = None
            async with asyncio.timeout(60):  # scrapes come every second; a rate needs two
                while p99 is None:
                    result = await _query(client, base, P99_EMAIL)
                    if result and not math.isnan(float(result[0]["value"][1])):
                        p99 = float(result[0]["value"][1])
                    else:
                        await asyncio.sleep(0.2)  # the polling interval, until the deadline
            up = await _query(client, base, 'up{job=~"aftercare-.*"}')
    finally:
        for process in reversed(processes):
            await process.stopped()
    assert p99 is not None, prometheus.tail()
    assert 0 < p99 < 600
    assert sorted((r["metric"]["job"], r["value"][1]) for r in up) == [
        ("aftercare-senders", "1"),
        ("aftercare-worker", "1"),
    ]
    print(f"p99 end-to-end latency of email, read from Prometheus: {p99 * 1000:.0f} ms")
