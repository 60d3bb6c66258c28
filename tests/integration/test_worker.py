"""The journey worker on the real broker, on an accelerated clock, through a SIGKILL.

Two customers live a month in about a minute: one orders, receives and keeps a coffee machine (and
has opted out of SMS; the default journeys' holdout group of cross-sell holds this customer out);
the other cancels. The worker is killed with SIGKILL in the middle, while
touchpoints are pending, and restarted. What reaches ``dispatch`` and ``deliveries`` must be exactly
what the journey core decides for the same events: the same touchpoint ids, in the same order per
customer, nothing lost to the kill.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from pipeline.clock import AcceleratedClock
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.intake import Admitted, SourceRecord
from pipeline.journeys.engine import JourneyEngine
from pipeline.journeys.model import (
    CancelTouchpoint,
    CustomerState,
    Priority,
    SendTouchpoint,
    Wake,
)
from pipeline.journeysfile import load_journeys
from pipeline.metrics import COMMITTED_OFFSET
from pipeline.names import COPARTITIONED_ROLES, RECORD_OF_TOPIC, TopicRole
from pipeline.worker.convert import to_event
from tests.integration.kafkatools import end_offsets, wait_for_new
from tests.integration.processes import worker_process
from tests.support import free_ports

pytestmark = pytest.mark.integration

FACTOR = 43_200  # one simulated day every two real seconds
DAY = timedelta(days=1)
SIM_START = datetime(2026, 3, 1, tzinfo=UTC)
MACHINE = {
    "sku": "CM-900",
    "name": "Barista 900",
    "category": "coffee-machines",
    "quantity": 1,
    "unit_price_minor": 49900,
}


def _scenario(s: datetime) -> list[tuple[TopicRole, dict[str, Any]]]:
    """The events, by event time. Customer A keeps the machine; customer B cancels."""
    return [
        (
            TopicRole.PREFERENCES,
            {
                "event_id": "a-prefs",
                "customer_id": "cust-a",
                "occurred_at": s - timedelta(hours=1),
                "consent": {
                    "email": True,
                    "sms": False,
                    "whatsapp": False,
                    "push": False,
                    "in_app": True,
                },
                "marketing_opt_in": True,
                "quiet_hours": None,
                "timezone": "Europe/Berlin",
                "locale": "de-DE",
                "email": "ada@example.org",
                "phone": "+4915112345678",
            },
        ),
        (TopicRole.PURCHASES, _order("a-1", "cust-a", "order-a", s, "ORDER_PLACED")),
        (
            TopicRole.PURCHASES,
            _order("b-1", "cust-b", "order-b", s + timedelta(minutes=10), "ORDER_PLACED"),
        ),
        (
            TopicRole.PURCHASES,
            _order("b-2", "cust-b", "order-b", s + timedelta(hours=2), "ORDER_CANCELLED"),
        ),
        (TopicRole.SHIPMENTS, _parcel("a-2", s + DAY, "SHIPPED")),
        (TopicRole.SHIPMENTS, _parcel("a-3", s + 2 * DAY, "DELIVERED")),
    ]


def _order(event_id: str, customer: str, order: str, at: datetime, kind: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": at,
        "type": kind,
        "order_id": order,
        "items": [MACHINE] if kind == "ORDER_PLACED" else [],
        "total_minor": 49900,
        "currency": "EUR",
        "contact": {
            "email": f"{customer}@example.org",
            "phone": None,
            "locale": "de-DE",
            "timezone": "Europe/Berlin",
        },
        "reason": "Changed my mind" if kind == "ORDER_CANCELLED" else None,
    }


def _parcel(event_id: str, at: datetime, kind: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "customer_id": "cust-a",
        "occurred_at": at,
        "type": kind,
        "order_id": "order-a",
        "shipment_id": "parcel-a",
        "carrier": "DHL",
        "tracking_url": "https://tracking.example.org/parcel-a",
        "eta": None,
        "reason": None,
    }


def _oracle(
    events: list[tuple[TopicRole, dict[str, Any]]], end: datetime
) -> tuple[dict[str, str], dict[str, str]]:
    """What the pure core decides for these events: {touchpoint id: journey} sent and cancelled."""
    engine = JourneyEngine(load_journeys())
    states: dict[str, CustomerState | None] = {}
    sent: dict[str, str] = {}
    cancelled: dict[str, str] = {}

    def run(customer: str, event: Any, now: datetime) -> None:
        decision = engine.decide(states.get(customer), event, now)
        states[customer] = decision.state
        for command in decision.commands:
            if isinstance(command, SendTouchpoint):
                sent[command.touchpoint.touchpoint_id] = command.touchpoint.journey
            elif isinstance(command, CancelTouchpoint):
                cancelled[command.touchpoint.touchpoint_id] = command.touchpoint.journey

    def wake_until(moment: datetime) -> None:
        while True:
            due = [
                (w, c)
                for c, s in states.items()
                if s and (w := engine.next_wakeup(s)) and w <= moment
            ]
            if not due:
                return
            wake, customer = min(due)
            run(customer, Wake(customer, wake), wake)

    for role, record in sorted(events, key=lambda e: e[1]["occurred_at"]):
        wake_until(record["occurred_at"])
        source = SourceRecord(role.value, 0, 0, record["customer_id"].encode(), b"")
        event = to_event(
            Admitted(role, RECORD_OF_TOPIC[role], record, source), record["occurred_at"]
        )
        run(record["customer_id"], event, record["occurred_at"])
    wake_until(end)
    return sent, cancelled


async def test_a_month_of_journeys_survives_a_sigkill(
    topics: Settings, producer: AIOKafkaProducer, schemas: SchemaSet, tmp_path: Path
) -> None:
    epoch = time.time()
    clock = AcceleratedClock(SIM_START, FACTOR, epoch)
    (port,) = free_ports(1)
    worker = worker_process(
        topics,
        tmp_path / "state",
        tmp_path / "worker.log",
        port,
        AFTERCARE_CLOCK_FACTOR=str(FACTOR),
        AFTERCARE_CLOCK_START=SIM_START.isoformat(),
        AFTERCARE_CLOCK_EPOCH=repr(epoch),
    )
    dispatch_start = await end_offsets(topics, topics.topic(TopicRole.DISPATCH))
    deliveries_start = await end_offsets(topics, topics.topic(TopicRole.DELIVERIES))
    worker.start()
    try:
        await worker.wait_ready()
        s = (clock.now() + timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
        events = _scenario(s)
        end = s + 33 * DAY
        sent, cancelled = _oracle(events, end)
        kill_at = s + 6 * DAY  # after need-help, before the feedback request: things are pending

        async def wait_for(moment: datetime) -> None:
            await asyncio.sleep(clock.real_seconds_until(moment))

        for role, record in sorted(events, key=lambda e: e[1]["occurred_at"]):
            await wait_for(record["occurred_at"])
            value = schemas.encode(RECORD_OF_TOPIC[role], record)
            await producer.send_and_wait(
                topics.topic(role), value=value, key=record["customer_id"].encode()
            )

        await wait_for(kill_at)
        worker.kill()
        worker.start()
        recovery_seconds = await worker.wait_ready()
        print(f"worker ready {recovery_seconds:.1f} s after SIGKILL and restart")

        await wait_for(end)
        dispatched = await wait_for_new(
            topics, topics.topic(TopicRole.DISPATCH), dispatch_start, len(sent), timeout=60
        )
        outcomes = await wait_for_new(
            topics, topics.topic(TopicRole.DELIVERIES), deliveries_start, len(cancelled), timeout=60
        )
    finally:
        status = worker.stop()
    assert status == 0, worker.tail()

    commands = [
        schemas.decode(m.value, RECORD_OF_TOPIC[TopicRole.DISPATCH]).record for m in dispatched
    ]
    ended = [
        schemas.decode(m.value, RECORD_OF_TOPIC[TopicRole.DELIVERIES]).record for m in outcomes
    ]
    assert {c["touchpoint_id"] for c in commands} == set(sent), worker.tail()
    assert {o["touchpoint_id"] for o in ended} == set(cancelled), worker.tail()

    def journeys_of(customer: str) -> list[str]:
        seen: list[str] = []
        for command in commands:  # first appearance of each id, in the order they were sent
            if command["customer_id"] == customer and command["journey"] not in seen:
                seen.append(command["journey"])
        return seen

    assert journeys_of("cust-a") == [
        "order_confirmation",
        "shipped",
        "delivered",
        "product_education",
        "need_help",
        "feedback_request",
    ]
    assert journeys_of("cust-b") == ["order_confirmation", "cancellation"]
    shipped = next(c for c in commands if c["journey"] == "shipped")
    assert shipped["channels"] == ["EMAIL"]  # opted out of SMS; no WhatsApp or push consent
    assert shipped["context"]["tracking_url"] == "https://tracking.example.org/parcel-a"
    assert load_journeys().holdouts.reason("cust-a", "cross_sell", "offer", Priority.MARKETING)
    assert sorted((o["customer_id"], o["journey"], o["status"], o["reason"]) for o in ended) == [
        ("cust-a", "cross_sell", "SUPPRESSED", "holdout"),
        ("cust-a", "not_shipped_watchdog", "SUPPRESSED", "exit:SHIPPED"),
        ("cust-b", "not_shipped_watchdog", "SUPPRESSED", "exit:ORDER_CANCELLED"),
    ]
    (held,) = [o for o in ended if o["reason"] == "holdout"]
    assert held["due_at"] <= held["occurred_at"]  # recorded when it would have gone
    assert held["detail"] == "journey holdout 10%"
    for command in commands:
        assert command["occurred_at"] >= command["due_at"]  # never sent early
        assert command["occurred_at"] <= command["expires_at"]  # never sent late


async def test_a_ready_worker_knows_where_each_input_partition_stands(
    topics: Settings, tmp_path: Path
) -> None:
    """Ready means the committed offset of every partition it took has been looked up: the first
    records after a start (a burst of wakes after a restart) do not wait for that lookup."""
    (port,) = free_ports(1)
    worker = worker_process(topics, tmp_path / "state", tmp_path / "worker.log", port)
    worker.start()
    try:
        await worker.wait_ready()
        async with httpx.AsyncClient() as client:
            page = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        status = worker.stop()
    assert status == 0, worker.tail()
    tracked = {
        (sample.labels["topic"], int(sample.labels["partition"]))
        for family in text_string_to_metric_families(page)
        if family.name == COMMITTED_OFFSET
        for sample in family.samples
    }
    expected = {
        (topics.topic(role), partition)
        for role in COPARTITIONED_ROLES
        for partition in range(topics.input_partitions)
    }
    assert tracked == expected, worker.tail()
