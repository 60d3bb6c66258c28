"""Rules beyond the schema, one row per rule: the record and words of the dead letter's reason."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from pipeline.codec import DeadLetterError, SchemaSet
from pipeline.intake import Admitted, DeadLetter, SourceRecord, admit
from pipeline.names import TopicRole
from tests.samples import FULL_NAMES, SAMPLES, T0, app_usage, preferences, purchase, shipment

NOW = T0 + timedelta(days=10)
SCHEMAS = SchemaSet.load()

P, S, A, PR = TopicRole.PURCHASES, TopicRole.SHIPMENTS, TopicRole.APP_USAGE, TopicRole.PREFERENCES
CASES: list[tuple[str, TopicRole, dict[str, Any], str]] = [
    ("empty event_id", P, purchase(event_id=""), "event_id is empty"),
    ("blank customer_id", S, shipment(customer_id="  "), "customer_id is empty"),
    ("huge event_id", A, app_usage(event_id="x" * 300), "at most 256"),
    ("control chars", P, purchase(customer_id="a\nb"), "control characters"),
    ("epoch zero", P, purchase(occurred_at=T0.replace(year=1970)), "before 2000"),
    ("far future", S, shipment(occurred_at=NOW + timedelta(days=400)), "ahead of the clock"),
    ("no order id", P, purchase(order_id=""), "order_id is empty"),
    ("empty basket", P, purchase(items=[]), "ORDER_PLACED has no items"),
    ("zero quantity", P, purchase(items=[{**purchase()["items"][0], "quantity": 0}]), "quantity"),
    ("negative total", P, purchase(total_minor=-1), "total_minor is negative"),
    ("bad currency", P, purchase(currency="euro"), "ISO 4217"),
    (
        "bad timezone",
        P,
        purchase(contact={**purchase()["contact"], "timezone": "Mars/Base"}),
        "IANA",
    ),
    ("bad phone", P, purchase(contact={**purchase()["contact"], "phone": "0151 1234"}), "E.164"),
    ("bad email", PR, preferences(email="ada at example"), "email is not"),
    ("bad locale", PR, preferences(locale="german!"), "BCP 47"),
    ("no shipment id", S, shipment(shipment_id=""), "shipment_id is empty"),
    ("bad tracking url", S, shipment(tracking_url="javascript:alert(1)"), "http(s)"),
    ("feedback without rating", A, app_usage(rating=None), "needs a rating"),
    ("rating out of range", A, app_usage(rating=9), "1 to 5"),
    ("push token missing", A, app_usage(type="PUSH_TOKEN_REGISTERED"), "push_token"),
    (
        "quiet hours out of range",
        PR,
        preferences(quiet_hours={"start_minute": 1440, "end_minute": 60}),
        "0-1439",
    ),
    (
        "empty quiet window",
        PR,
        preferences(quiet_hours={"start_minute": 60, "end_minute": 60}),
        "same minute",
    ),
]


@pytest.mark.parametrize(
    ("role", "record", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_rule_broken_is_an_invalid_dead_letter(
    role: TopicRole, record: dict[str, Any], words: str
) -> None:
    value = SCHEMAS.encode(FULL_NAMES[role], record)
    source = SourceRecord(role.value, 0, 7, record["customer_id"].encode(), value)
    verdict = admit(SCHEMAS, role, source, now=NOW, max_future=timedelta(hours=24))
    assert isinstance(verdict, DeadLetter)
    assert verdict.error is DeadLetterError.INVALID
    assert words in verdict.reason


@pytest.mark.parametrize(
    ("role", "record"),
    [
        (P, purchase(type="ORDER_CANCELLED", items=[], reason="Changed my mind")),
        (P, purchase(contact=None)),
        (S, shipment(tracking_url=None, eta=None, carrier=None)),
        (A, app_usage(type="APP_OPENED", rating=None)),
        (PR, preferences(quiet_hours=None, timezone=None, locale=None, email=None, phone=None)),
        (PR, preferences(quiet_hours={"start_minute": 0, "end_minute": 420})),
        (S, shipment(occurred_at=NOW + timedelta(hours=23))),
    ],
)
def test_valid_variations_are_admitted(role: TopicRole, record: dict[str, Any]) -> None:
    value = SCHEMAS.encode(FULL_NAMES[role], record)
    source = SourceRecord(role.value, 0, 7, b"cust-1", value)
    verdict = admit(SCHEMAS, role, source, now=NOW, max_future=timedelta(hours=24))
    assert isinstance(verdict, Admitted), getattr(verdict, "reason", None)


def test_samples_of_every_input_are_valid() -> None:
    for role in (P, S, A, PR):
        value = SCHEMAS.encode(FULL_NAMES[role], SAMPLES[role]())
        source = SourceRecord(role.value, 0, 0, b"cust-1", value)
        assert isinstance(admit(SCHEMAS, role, source, now=NOW, max_future=timedelta(1)), Admitted)
