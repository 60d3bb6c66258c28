"""Inputs decided in event-time order, whatever order they are read in.

One customer's preferences (granting WhatsApp), ORDER_PLACED and SHIPPED happen in that order, a
second apart, and reach their three topics in the reverse order, within the worker's idle bound.
Decided as read, SHIPPED would come first: no order confirmation before it, no "not shipped"
watchdog to cancel, and no WhatsApp consent yet. Decided in event-time order, what reaches
``dispatch`` and ``deliveries`` is what the journeys say for events in their real order.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from tests.integration.kafkatools import end_offsets, wait_for_new
from tests.integration.processes import worker_process
from tests.samples import preferences, purchase, shipment
from tests.support import free_ports

pytestmark = pytest.mark.integration

IDLE_MS = 1500  # the worker's bound for this test; the three arrive within it
SPACING_SECONDS = 0.3


def _quiet_hours_far_from(moment: datetime) -> dict[str, int]:
    """An hour of quiet twelve hours away, so that WhatsApp is never held whenever this runs."""
    minute = (moment.hour * 60 + moment.minute + 12 * 60) % 1440
    return {"start_minute": minute, "end_minute": (minute + 60) % 1440}


async def test_events_read_in_reverse_are_decided_in_the_order_they_happened(
    topics: Settings, producer: AIOKafkaProducer, schemas: SchemaSet, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    worker = worker_process(
        topics,
        tmp_path / "state",
        tmp_path / "worker.log",
        port,
        AFTERCARE_MAX_IDLE_MS=str(IDLE_MS),
    )
    customer = "cust-reverse"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=10)
    events = [  # as they happened
        (
            TopicRole.PREFERENCES,
            preferences(
                event_id="r-prefs",
                customer_id=customer,
                occurred_at=start,
                consent={
                    "email": True,
                    "sms": True,
                    "whatsapp": True,
                    "push": False,
                    "in_app": True,
                },
                timezone="UTC",
                quiet_hours=_quiet_hours_far_from(start),
            ),
        ),
        (
            TopicRole.PURCHASES,
            purchase(
                event_id="r-placed", customer_id=customer, occurred_at=start + timedelta(seconds=1)
            ),
        ),
        (
            TopicRole.SHIPMENTS,
            shipment(
                event_id="r-shipped",
                customer_id=customer,
                occurred_at=start + timedelta(seconds=2),
                type="SHIPPED",
                eta=None,
                reason=None,
            ),
        ),
    ]
    dispatch = topics.topic(TopicRole.DISPATCH)
    deliveries = topics.topic(TopicRole.DELIVERIES)
    dispatch_start = await end_offsets(topics, dispatch)
    deliveries_start = await end_offsets(topics, deliveries)
    worker.start()
    try:
        await worker.wait_ready()
        # Read in the reverse order, each a little after the other (the spacing is the
        # scenario, not a wait for anything): with no idle bound the worker would decide the
        # SHIPPED alone, before the other two arrive.
        for role, record in reversed(events):
            await producer.send_and_wait(
                topics.topic(role),
                value=schemas.encode(RECORD_OF_TOPIC[role], record),
                key=customer.encode(),
            )
            await asyncio.sleep(SPACING_SECONDS)
        dispatched = await wait_for_new(topics, dispatch, dispatch_start, 2, timeout=60)
        ended = await wait_for_new(topics, deliveries, deliveries_start, 1, timeout=60)
    finally:
        status = worker.stop()
    assert status == 0, worker.tail()

    commands = [
        schemas.decode(m.value, RECORD_OF_TOPIC[TopicRole.DISPATCH]).record for m in dispatched
    ]
    outcomes = [
        schemas.decode(m.value, RECORD_OF_TOPIC[TopicRole.DELIVERIES]).record for m in ended
    ]
    assert [c["journey"] for c in commands] == ["order_confirmation", "shipped"]
    shipped = commands[1]
    assert shipped["channels"][0] == "WHATSAPP"  # the consent granted before the order counts
    assert [(o["journey"], o["status"], o["reason"]) for o in outcomes] == [
        ("not_shipped_watchdog", "SUPPRESSED", "exit:SHIPPED")
    ]
