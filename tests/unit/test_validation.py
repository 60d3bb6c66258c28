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
    ("unknown currency", P, purchase(currency="XYZ"), "currency 'XYZ' is not in the ISO 4217"),
    ("lower-case currency", P, purchase(currency="eur"), "codes are upper case (EUR)"),
    ("gold", P, purchase(currency="XAU"), "currency 'XAU' is ISO 4217's 'Gold', which has no"),
    ("code for testing", P, purchase(currency="XTS"), "not a currency of sale"),
    ("code for no currency", P, purchase(currency="XXX"), "not a currency of sale"),
    ("fund code", P, purchase(currency="USN"), "fund code 'US Dollar (Next day)'"),
    ("long currency cut", P, purchase(currency="E" * 60), f"currency '{'E' * 40}' is not"),
]

# The phone rules, on both records that carry a number: the field, its value, what is wrong.
PHONES: list[tuple[str, str, str]] = [
    (
        "no carrier assigns it",
        "+10000000",
        "phone '+10000000' is not a valid phone number: +1 0000000 is not a number any carrier "
        "assigns: 7 digits after +1 make at most a local number of US, without its area code "
        "(E.164 like +4915112345678)",
    ),
    (
        "too short",
        "+1415555267",
        "phone '+1415555267' is not a valid phone number: +1 415555267 has 9 digits after +1, "
        "too few for a number of US",
    ),
    ("too long", "+491511234567890123", "has 16 digits after +49, too many for a number of DE"),
    ("no such length", "+6112345678901", "11 digits after +61, a length no number of AU has"),
    ("unassigned range", "+447700900123", "+44 7700 900123 is not a number any carrier in GB"),
    ("no country code", "+9991234567", "phone '+9991234567' is not a valid phone number: it"),
    ("national form", "015112345678", "phone '015112345678' is not in E.164 form: it must start"),
    ("spaces", "+49 151 12345678", "phone '+49 151 12345678' is not in E.164 form: only digits"),
    ("letters", "+1800FLOWERS", "only digits may follow the +"),
    ("far too long, cut", "+" + "1" * 60, f"phone '+{'1' * 39}' is not a valid phone number: 60"),
]
CASES += [
    (
        f"purchase, {name}",
        P,
        purchase(contact={**purchase()["contact"], "phone": phone}),
        f"contact.{words}" if words.startswith("phone ") else words,
    )
    for name, phone, words in PHONES
]
CASES += [
    (f"preferences, {name}", PR, preferences(phone=phone), words) for name, phone, words in PHONES
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


# Mobile and fixed-line numbers of a few countries, as upstream systems send them.
VALID_PHONES = [
    "+4915112345678",  # DE mobile
    "+493012345678",  # DE Berlin landline
    "+14155552671",  # US
    "+14165550123",  # CA
    "+447911123456",  # GB mobile
    "+33612345678",  # FR
    "+819012345678",  # JP
    "+61412345678",  # AU
    "+5511912345678",  # BR
    "+919812345678",  # IN
    "+41791234567",  # CH
]


@pytest.mark.parametrize(
    ("role", "record"),
    [
        *[(P, purchase(contact={**purchase()["contact"], "phone": p})) for p in VALID_PHONES],
        *[(PR, preferences(phone=p)) for p in VALID_PHONES],
        *[(P, purchase(currency=code)) for code in ("JPY", "BHD", "CHF", "GBP", "USD", "CLP")],
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
