"""Rules an input event must keep beyond what its Avro schema can say.

The schema says a field is a string; these rules say it is not empty, that a time zone exists, that
the key is the customer. Each rule names the field, its value (cut to 40 characters) and what to
do, because the person reading the dead letter is the upstream team that produced it.

Phone numbers and currencies are checked by libraries that keep the world's tables: a phone number
must be E.164 (``+``, the country calling code, digits only) and a number ``phonenumbers`` calls
valid for its country, a currency a currency of sale in the ISO 4217 table (:mod:`pipeline.money`:
no metals, funds or test codes). The reason tells a malformed number (no ``+``, spaces, letters)
from a well-formed one that is too short, too long or not a number any carrier assigns.

``problems(...)`` is pure: the caller passes the clock reading in. It runs for every event, so
what costs (parsing a phone number, loading a time zone) is cached per distinct value.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

from pipeline.money import currency_problem
from pipeline.names import RECORD_OF_TOPIC, TopicRole

# Nothing Aftercare handles happened before this; a zero or a timestamp in seconds does.
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
MAX_ID_LENGTH = 256

SHOWN = 40  # characters of a value a reason quotes

_E164_FORM = re.compile(r"\+[0-9]*")
_E164_EXAMPLE = "(E.164 like +4915112345678)"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_PURCHASE = RECORD_OF_TOPIC[TopicRole.PURCHASES]
_SHIPMENT = RECORD_OF_TOPIC[TopicRole.SHIPMENTS]
_APP_USAGE = RECORD_OF_TOPIC[TopicRole.APP_USAGE]
_PREFERENCES = RECORD_OF_TOPIC[TopicRole.PREFERENCES]


def key_mismatch(key: bytes | None, customer_id: str) -> str | None:
    """Why ``key`` is not the right record key for an event of ``customer_id``, or None."""
    expected = customer_id.encode("utf-8")
    if key == expected:
        return None
    shown = "no key" if key is None else f"key {key[:80]!r}"
    return (
        f"{shown} differs from customer_id {customer_id[:80]!r}: key every event by its "
        "customer_id (UTF-8) so that all of a customer's events land on one partition"
    )


def problems(
    full_name: str, record: Mapping[str, Any], *, now: datetime, max_future: timedelta
) -> Iterator[str]:
    """Yield what is wrong with a decoded input event, most fundamental first."""
    yield from _identity(record)
    yield from _event_time(record, now=now, max_future=max_future)
    check = _CHECKS.get(full_name)
    if check is not None:
        yield from check(record)


def _identity(record: Mapping[str, Any]) -> Iterator[str]:
    for field in ("event_id", "customer_id"):
        value = record.get(field)
        if not isinstance(value, str) or not value.strip():
            yield f"{field} is empty; every event needs a non-empty {field}"
        elif len(value) > MAX_ID_LENGTH:
            yield f"{field} is {len(value)} characters long; at most {MAX_ID_LENGTH} are allowed"
        elif _CONTROL.search(value):
            yield f"{field} {value[:80]!r} contains control characters"


def _event_time(
    record: Mapping[str, Any], *, now: datetime, max_future: timedelta
) -> Iterator[str]:
    occurred_at = record.get("occurred_at")
    if not isinstance(occurred_at, datetime):
        yield "occurred_at is missing"
        return
    if occurred_at < EARLIEST_EVENT:
        yield (
            f"occurred_at is {_iso(occurred_at)}, before {EARLIEST_EVENT.year}: set it to when the "
            "event happened, in UTC milliseconds since the epoch (not seconds)"
        )
    elif occurred_at > now + max_future:
        yield (
            f"occurred_at {_iso(occurred_at)} is {_span(occurred_at - now)} ahead of the clock "
            f"({_iso(now)}), more than the {_span(max_future)} allowed "
            "(AFTERCARE_MAX_FUTURE_SECONDS): check the producer's clock and that it sends "
            "milliseconds, not microseconds"
        )


def _purchase(record: Mapping[str, Any]) -> Iterator[str]:
    yield from _required(record, "order_id")
    items = record.get("items") or []
    if record.get("type") == "ORDER_PLACED" and not items:
        yield "ORDER_PLACED has no items; the order confirmation needs the basket"
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not str(item.get("sku", "")).strip():
            yield f"{where}.sku is empty"
        if item.get("quantity", 0) < 1:
            yield f"{where}.quantity is {item.get('quantity')}; it must be at least 1"
        if item.get("unit_price_minor", 0) < 0:
            yield f"{where}.unit_price_minor is negative"
    if record.get("total_minor", 0) < 0:
        yield "total_minor is negative; amounts are in minor units (cents) and never below zero"
    currency = record.get("currency", "")
    wrong = currency_problem(currency)
    if wrong is not None:
        yield f"currency {currency[:SHOWN]!r} {wrong}"
    contact = record.get("contact")
    if contact:
        yield from _contact(contact, "contact.")


def _shipment(record: Mapping[str, Any]) -> Iterator[str]:
    yield from _required(record, "order_id")
    yield from _required(record, "shipment_id")
    url = record.get("tracking_url")
    if url is not None and not url.startswith(("https://", "http://")):
        yield f"tracking_url {url[:80]!r} is not an http(s) link"


def _app_usage(record: Mapping[str, Any]) -> Iterator[str]:
    kind = record.get("type")
    rating = record.get("rating")
    if kind == "FEEDBACK_SUBMITTED" and rating is None:
        yield "FEEDBACK_SUBMITTED needs a rating (1 to 5)"
    if rating is not None and not 1 <= rating <= 5:
        yield f"rating is {rating}; it must be 1 to 5"
    if kind == "PUSH_TOKEN_REGISTERED" and not (record.get("push_token") or "").strip():
        yield "PUSH_TOKEN_REGISTERED needs a push_token"


def _preferences(record: Mapping[str, Any]) -> Iterator[str]:
    quiet = record.get("quiet_hours")
    if quiet is not None:
        for field in ("start_minute", "end_minute"):
            if not 0 <= quiet[field] <= 1439:
                yield f"quiet_hours.{field} is {quiet[field]}; minutes after midnight are 0-1439"
        if quiet["start_minute"] == quiet["end_minute"]:
            yield "quiet_hours starts and ends at the same minute; send null for no quiet hours"
    yield from _contact(record, "")


def _contact(contact: Mapping[str, Any], prefix: str) -> Iterator[str]:
    email = contact.get("email")
    if email is not None and not _EMAIL.fullmatch(email):
        yield f"{prefix}email is not an email address"
    phone = contact.get("phone")
    if phone is not None and (wrong := phone_problem(phone)) is not None:
        yield f"{prefix}phone {phone[:SHOWN]!r} {wrong}"
    timezone = contact.get("timezone")
    if timezone is not None and not _is_timezone(timezone):
        yield f"{prefix}timezone {timezone[:60]!r} is not an IANA time zone (like Europe/Berlin)"
    locale = contact.get("locale")
    if locale is not None and not re.fullmatch(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*", locale):
        yield f"{prefix}locale {locale[:40]!r} is not a BCP 47 language tag (like de-DE)"


def _required(record: Mapping[str, Any], field: str) -> Iterator[str]:
    value = record.get(field)
    if not isinstance(value, str) or not value.strip():
        yield f"{field} is empty"


@lru_cache(maxsize=8192)
def phone_problem(phone: str) -> str | None:
    """Why ``phone`` is not a phone number to send to, or None; the words follow the number.

    Cached: a customer's number comes with every order and preference change, and parsing it
    costs tens of microseconds where the cache costs a fraction of one.
    """
    if not phone.startswith("+"):
        return (
            "is not in E.164 form: it must start with + and the country calling code, not a "
            f"national 0 or 00 {_E164_EXAMPLE}"
        )
    if not _E164_FORM.fullmatch(phone):
        return (
            "is not in E.164 form: only digits may follow the +, no spaces, dashes, brackets or "
            f"letters {_E164_EXAMPLE}"
        )
    not_valid = "is not a valid phone number:"
    if len(phone) > 20:  # E.164 allows 15 digits; longer ones are not worth parsing (or caching)
        return f"{not_valid} {len(phone) - 1} digits, E.164 allows at most 15 {_E164_EXAMPLE}"
    try:
        number = phonenumbers.parse(phone, None)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            return f"{not_valid} it starts with no country calling code {_E164_EXAMPLE}"
        if exc.error_type == NumberParseException.TOO_LONG:
            return f"{not_valid} too long, E.164 allows at most 15 digits {_E164_EXAMPLE}"
        return f"{not_valid} too short to be one {_E164_EXAMPLE}"
    if phonenumbers.is_valid_number(number):
        return None
    return f"{not_valid} {_why_not_valid(number)} {_E164_EXAMPLE}"


def _why_not_valid(number: phonenumbers.PhoneNumber) -> str:
    """What is wrong with a parsed number ``phonenumbers`` does not call valid (the slow part,
    formatting, only for those)."""
    code = number.country_code or 0  # always set by parse()
    region = phonenumbers.region_code_for_country_code(code)
    digits = len(phonenumbers.national_significant_number(number))
    shown = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    after = f"{shown} has {digits} digits after +{code}"
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible == ValidationResult.INVALID_COUNTRY_CODE:
        return f"+{code} is no country calling code"
    if possible == ValidationResult.TOO_SHORT:
        return f"{after}, too few for a number of {region}"
    if possible == ValidationResult.TOO_LONG:
        return f"{after}, too many for a number of {region}"
    if possible == ValidationResult.INVALID_LENGTH:
        return f"{after}, a length no number of {region} has"
    if possible == ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        return (
            f"{shown} is not a number any carrier assigns: {digits} digits after +{code} make "
            f"at most a local number of {region}, without its area code"
        )
    return f"{shown} is not a number any carrier in {region} assigns"


@lru_cache(maxsize=1024)
def _is_timezone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} seconds"


_CHECKS = {
    _PURCHASE: _purchase,
    _SHIPMENT: _shipment,
    _APP_USAGE: _app_usage,
    _PREFERENCES: _preferences,
}
