"""Policies that apply across all journeys, in one place.

Each is a pure function of the customer's state, the touchpoint and the time:

- consent: a channel is usable only if the customer allows it and we have an address for it, and
  for engagement and marketing only if they have not unsubscribed from it (one-click);
- marketing: needs the customer's marketing opt-in;
- quiet hours: the channels the journeys file holds for the touchpoint's priority (by default
  SMS, WhatsApp and push for transactional; email too for engagement and marketing) wait until
  the window ends in the customer's own time zone, unless the touchpoint is urgent; in-app and
  the webhook are never held back;
- frequency caps: engagement and marketing sends per customer across journeys;
- expiry: past its validity a touchpoint is never sent late.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta, tzinfo
from functools import lru_cache

from pipeline.journeys.model import (
    Channel,
    Contact,
    CustomerState,
    Priority,
    QuietHours,
    Touchpoint,
)
from pipeline.journeys.rules import FrequencyCap


def address(
    channel: Channel,
    *,
    email: str | None,
    phone: str | None,
    push_token: str | None,
    customer_id: str,
) -> str | None:
    """Where ``channel`` reaches this customer; None when we have no address for it."""
    if channel is Channel.EMAIL:
        return email or None
    if channel in (Channel.SMS, Channel.WHATSAPP):
        return phone or None
    if channel is Channel.PUSH:
        return push_token or None
    if channel is Channel.IN_APP:
        return customer_id
    return "support"  # webhook: the business's configured endpoint, not the customer


def has_address(contact: Contact, channel: Channel, customer_id: str) -> bool:
    """Whether :func:`address` finds one (asked for every channel of every touchpoint fired)."""
    field = _ADDRESS_FIELD.get(channel)
    return field is None or bool(getattr(contact, field))


# The Contact field holding each channel's address; in-app and webhook always have one.
_ADDRESS_FIELD = {
    Channel.EMAIL: "email",
    Channel.SMS: "phone",
    Channel.WHATSAPP: "phone",
    Channel.PUSH: "push_token",
}


def usable_channels(
    state: CustomerState, touchpoint: Touchpoint
) -> tuple[tuple[Channel, ...], str]:
    """The touchpoint's channels this customer can receive, in its order; or () and why not."""
    preferences = state.preferences
    consent = preferences.consent
    allowed = [c for c in touchpoint.channels if consent.allows(c)]
    if preferences.unsubscribed and touchpoint.priority is not Priority.TRANSACTIONAL:
        allowed = [c for c in allowed if c not in preferences.unsubscribed]
    if not allowed:
        return (), "no_consent"
    usable = tuple(c for c in allowed if has_address(state.contact, c, state.customer_id))
    if not usable:
        return (), "no_address"
    return usable, ""


@lru_cache(maxsize=512)
def zone(name: str | None) -> tzinfo:
    if not name:
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC  # the intake refuses unknown zones; a stale one must not stop a customer


def in_quiet_hours(quiet: QuietHours, moment: datetime, timezone: tzinfo) -> bool:
    local = moment.astimezone(timezone)
    minute = local.hour * 60 + local.minute
    if quiet.start_minute < quiet.end_minute:
        return quiet.start_minute <= minute < quiet.end_minute
    return minute >= quiet.start_minute or minute < quiet.end_minute  # wraps midnight


def quiet_hours_end(quiet: QuietHours, moment: datetime, timezone: tzinfo) -> datetime:
    """The first instant after ``moment`` at which the window is over, DST-safe.

    Computed on the local calendar (the end's wall-clock time on the right local date), not by
    adding hours, so a night in which the clocks change still ends at the window's end time.
    """
    local = moment.astimezone(timezone)
    end = time(quiet.end_minute // 60, quiet.end_minute % 60)
    candidate = datetime.combine(local.date(), end, tzinfo=timezone)
    if candidate.astimezone(UTC) <= moment:
        candidate = datetime.combine(local.date() + timedelta(days=1), end, tzinfo=timezone)
    # A wall-clock time inside a spring-forward gap resolves (fold=0) to an instant after the gap.
    return candidate.astimezone(UTC)


def capped(sends: Sequence[datetime], caps: Sequence[FrequencyCap], now: datetime) -> bool:
    """Whether one more engagement send at ``now`` would break a cap."""
    return any(
        sum(1 for sent in sends if now - cap.within < sent <= now) >= cap.max for cap in caps
    )


def recent_sends(
    sends: Sequence[datetime], caps: Sequence[FrequencyCap], now: datetime
) -> tuple[datetime, ...]:
    """The sends that still count for some cap."""
    longest = max((cap.within for cap in caps), default=timedelta(0))
    return tuple(sent for sent in sends if sent > now - longest)


def expired(touchpoint: Touchpoint, now: datetime) -> bool:
    return now > touchpoint.expires_at


def held_in_quiet_hours(channels: Sequence[Channel], held: frozenset[Channel]) -> bool:
    """Whether the best channel is one that waits out quiet hours for this priority."""
    return bool(channels) and channels[0] in held
