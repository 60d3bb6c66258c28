"""Records to events and commands to records, checked against the schemas themselves."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.codec import SchemaSet
from pipeline.intake import Admitted, SourceRecord, Tombstone
from pipeline.journeys.model import (
    AppUsageEvent,
    CancelTouchpoint,
    PreferencesErased,
    PreferencesEvent,
    PurchaseEvent,
    SendTouchpoint,
    ShipmentEvent,
)
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.worker.convert import dispatch_record, outcome_record, to_event
from tests.samples import SAMPLES, T0
from tests.unit.journeys.scenario import Scenario, parcel, placed, prefs

SCHEMAS = SchemaSet.load()


@pytest.mark.parametrize(
    ("role", "kind"),
    [
        (TopicRole.PURCHASES, PurchaseEvent),
        (TopicRole.SHIPMENTS, ShipmentEvent),
        (TopicRole.APP_USAGE, AppUsageEvent),
        (TopicRole.PREFERENCES, PreferencesEvent),
    ],
)
def test_every_input_record_becomes_its_event(role: TopicRole, kind: type) -> None:
    record = SAMPLES[role]()
    source = SourceRecord(role.value, 0, 0, b"cust-1", b"")
    event = to_event(Admitted(role, RECORD_OF_TOPIC[role], record, source), T0)
    assert isinstance(event, kind)
    assert (event.event_id, event.customer_id, event.occurred_at) == (
        record["event_id"],
        record["customer_id"],
        record["occurred_at"],
    )


def test_a_preferences_tombstone_erases_preferences() -> None:
    source = SourceRecord("preferences", 0, 0, b"cust-1", None)
    assert to_event(Tombstone("cust-1", source), T0) == PreferencesErased("cust-1", T0)


def test_commands_become_records_the_schemas_accept() -> None:
    run = Scenario()
    run.feed(prefs(sms=True))
    run.feed(placed())
    run.feed(parcel("SHIPPED", T0 + timedelta(days=1), tracking_url="https://t.example/1"))
    run.advance(timedelta(days=3))
    sends = [c for _, c in run.log if isinstance(c, SendTouchpoint)]
    cancels = [c for _, c in run.log if isinstance(c, CancelTouchpoint)]
    assert sends
    assert cancels
    for send in sends:
        name = RECORD_OF_TOPIC[TopicRole.DISPATCH]
        record = SCHEMAS.decode(SCHEMAS.encode(name, dispatch_record(send, run.now)), name).record
        assert record["touchpoint_id"] == record["event_id"] == send.touchpoint.touchpoint_id
        assert record["channels"] == [c.value for c in send.channels]
    for cancel in cancels:
        name = RECORD_OF_TOPIC[TopicRole.DELIVERIES]
        record = SCHEMAS.decode(SCHEMAS.encode(name, outcome_record(cancel, run.now)), name).record
        assert (record["status"], record["reason"]) == (cancel.outcome.value, cancel.reason)
        assert record["dispatched_at"] is None
