"""A digest on the real broker: two orders delivered the same day, one feedback request email that
lists both, its sibling recorded SUPPRESSED `digest` on deliveries."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.clock import AcceleratedClock
from pipeline.config import Settings
from pipeline.journeys.model import Priority
from pipeline.journeysfile import load_journeys
from pipeline.names import TopicRole
from pipeline.sandbox.server import Sandbox
from tests.integration.kafkatools import end_offsets
from tests.integration.processes import worker_process
from tests.integration.test_preferences import (
    _component,
    _outcome,
    _parcel,
    _publish,
    _sandbox_env,
)
from tests.samples import preferences, purchase
from tests.support import free_ports

pytestmark = pytest.mark.integration

FACTOR = 86_400  # a simulated day every real second


async def test_two_orders_delivered_the_same_day_get_one_feedback_request(
    topics: Settings, producer: AIOKafkaProducer, sandbox: Sandbox, tmp_path: Path
) -> None:
    customer = "cust-digest-1"
    assert load_journeys().holdouts.reason(
        customer, "feedback_request", "ask", Priority.ENGAGEMENT
    ) is None  # fmt: skip
    epoch = time.time()
    sim_start = datetime(2026, 3, 2, tzinfo=UTC)
    clock = AcceleratedClock(sim_start, FACTOR, epoch)
    shared = {
        "AFTERCARE_CLOCK_FACTOR": str(FACTOR),
        "AFTERCARE_CLOCK_START": sim_start.isoformat(),
        "AFTERCARE_CLOCK_EPOCH": repr(epoch),
    }
    senders = _component(
        "senders", topics, tmp_path, "AFTERCARE_SENDERS_PORT", **shared, **_sandbox_env(sandbox)
    )
    (worker_port,) = free_ports(1)
    worker = worker_process(topics, tmp_path / "state", tmp_path / "worker.log", worker_port,
                            **shared)  # fmt: skip
    deliveries = await end_offsets(topics, topics.topic(TopicRole.DELIVERIES))
    processes = (senders, worker)
    for process in processes:
        process.start()
    try:
        for process in processes:
            await process.wait_ready()
        s = (clock.now() + timedelta(hours=12)).replace(minute=0, second=0, microsecond=0)
        story = [
            (TopicRole.PREFERENCES, preferences(customer_id=customer, event_id=f"{customer}-p",
                                                occurred_at=s - timedelta(hours=1),
                                                quiet_hours=None, timezone="UTC")),
            (TopicRole.PURCHASES, purchase(customer_id=customer, event_id=f"{customer}-1",
                                           order_id="o1", occurred_at=s)),
            (TopicRole.PURCHASES, purchase(customer_id=customer, event_id=f"{customer}-2",
                                           order_id="o2", occurred_at=s + timedelta(hours=1))),
            (TopicRole.SHIPMENTS, _parcel(customer, "o1", "DELIVERED", s + timedelta(days=2))),
            (TopicRole.SHIPMENTS, _parcel(customer, "o2", "DELIVERED",
                                          s + timedelta(days=2, hours=5))),
        ]  # fmt: skip
        for role, record in story:
            await asyncio.sleep(clock.real_seconds_until(record["occurred_at"]))
            await _publish(producer, topics, role, record)

        first = await _outcome(topics, deliveries, customer, "feedback_request", order="o1",
                               timeout=90)  # fmt: skip
        second = await _outcome(topics, deliveries, customer, "feedback_request", order="o2",
                                timeout=30)  # fmt: skip
    finally:
        statuses = [await process.stopped() for process in processes]
    assert statuses == [0, 0], "\n".join(p.tail() for p in processes)
    assert first["status"] == "DELIVERED", first
    assert (second["status"], second["reason"]) == ("SUPPRESSED", "digest")
    assert second["detail"] == f"sent with {first['touchpoint_id']}"
    async with httpx.AsyncClient() as client:
        (email,) = (
            await client.get(
                f"{sandbox.http_url}/_sandbox/messages",
                params={"channel": "email", "touchpoint_id": first["touchpoint_id"]},
            )
        ).json()
    assert email["subject"] == "Wie gefallen Ihnen Ihre 2 Bestellungen?"  # a German customer
    assert email["body"].count("- Barista 900 espresso machine") == 2  # both orders listed
