"""The records worker and senders exchange: a dispatch read back is the command the worker decided,
and both sides' outcomes are one record shape the schema accepts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.codec import SchemaSet
from pipeline.journeys.model import Channel, Priority, SendTouchpoint
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.records import Dispatch, Status, delivery_outcome
from pipeline.worker.convert import dispatch_record
from tests.unit.journeys.scenario import T0, Scenario, parcel, placed, prefs

SCHEMAS = SchemaSet.load()
DISPATCH = RECORD_OF_TOPIC[TopicRole.DISPATCH]
DELIVERY = RECORD_OF_TOPIC[TopicRole.DELIVERIES]


def test_the_status_names_are_the_schemas() -> None:
    parsed = SCHEMAS.current(DELIVERY).parsed
    (status,) = [f for f in parsed["fields"] if f["name"] == "status"]
    assert sorted(status["type"]["symbols"]) == sorted(s.value for s in Status)


def test_a_dispatch_read_back_is_the_command_the_worker_decided() -> None:
    run = Scenario()
    run.feed(prefs(sms=True))
    run.feed(placed())
    run.feed(parcel("SHIPPED", T0 + timedelta(days=1), tracking_url="https://t.example/1"))
    sends = [c for _, c in run.log if isinstance(c, SendTouchpoint)]
    assert sends
    for send in sends:
        wire = SCHEMAS.encode(DISPATCH, dispatch_record(send, run.now))
        dispatch = Dispatch.of(SCHEMAS.decode(wire, DISPATCH).record)
        touchpoint = send.touchpoint
        assert (dispatch.touchpoint_id, dispatch.customer_id, dispatch.journey, dispatch.step) == (
            touchpoint.touchpoint_id,
            touchpoint.customer_id,
            touchpoint.journey,
            touchpoint.step,
        )
        assert (dispatch.priority, dispatch.channels, dispatch.recipient) == (
            touchpoint.priority,
            send.channels,
            send.recipient,
        )
        assert (dispatch.due_at, dispatch.expires_at, dispatch.trigger_occurred_at) == (
            touchpoint.due_at,
            touchpoint.expires_at,
            touchpoint.trigger_occurred_at,
        )
        assert dispatch.dispatched_at == run.now
        assert dispatch.context["tracking_url"] == touchpoint.context.tracking_url


@pytest.mark.parametrize("status", list(Status))
def test_an_outcome_of_any_status_is_a_record_the_schema_accepts(status: Status) -> None:
    delivered = status is Status.DELIVERED
    outcome = delivery_outcome(
        touchpoint_id="tp_1",
        customer_id="c1",
        journey="order_confirmation",
        step="confirm",
        order_id=None,
        priority=Priority.TRANSACTIONAL,
        status=status,
        reason=None if delivered else "expired",
        detail=None,
        channel=Channel.EMAIL if delivered else None,
        attempts=1 if delivered else 0,
        provider_message_id="m-1" if delivered else None,
        trigger_occurred_at=T0,
        dispatched_at=T0 if delivered else None,
        accepted_at=T0 + timedelta(seconds=2) if delivered else None,
        due_at=T0,
        now=T0 + timedelta(seconds=3),
    )
    record = SCHEMAS.decode(SCHEMAS.encode(DELIVERY, outcome), DELIVERY).record  # strict
    assert record["status"] == status.value
    assert record["event_id"] == record["touchpoint_id"] == "tp_1"
