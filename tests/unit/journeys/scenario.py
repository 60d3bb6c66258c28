"""A customer's life, written as a test reads it: events at times, the clock advanced by hand."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.journeys.engine import JourneyEngine
from pipeline.journeys.model import (
    AppUsageEvent,
    CancelTouchpoint,
    Command,
    Consent,
    ContactUpdate,
    CustomerState,
    Event,
    LineItem,
    PreferencesEvent,
    PurchaseEvent,
    QuietHours,
    SendTouchpoint,
    ShipmentEvent,
    Touchpoint,
    Wake,
)
from pipeline.journeys.rules import JourneyBook
from pipeline.journeysfile import load_journeys

# A Monday, 10:30 in Berlin: outside the default quiet hours (21:00-08:00).
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
# The customer of every scenario: in none of the default journeys' holdout groups (a test in
# test_holdouts.py checks), so the scenarios see what a customer who gets everything gets.
CUSTOMER = "c2"
BOOK = load_journeys()
ITEMS = (
    LineItem("CM-900", "Barista 900", "coffee-machines", 1, 49900),
    LineItem("BEANS", "House blend", "coffee", 2, 1850),
)
_ids = iter(range(10**9))


def _id() -> str:
    return f"e{next(_ids)}"


def placed(order: str = "o1", at: datetime = T0, **kw: Any) -> PurchaseEvent:
    contact = ContactUpdate(email="ada@example.org", timezone="Europe/Berlin")
    return PurchaseEvent(
        kw.pop("event_id", _id()),
        CUSTOMER,
        at,
        "ORDER_PLACED",
        order,
        ITEMS,
        53600,
        "EUR",
        contact,
        **kw,
    )


def purchase(kind: str, order: str = "o1", at: datetime = T0, **kw: Any) -> PurchaseEvent:
    return PurchaseEvent(kw.pop("event_id", _id()), CUSTOMER, at, kind, order, **kw)


def parcel(
    kind: str, at: datetime, order: str = "o1", shipment: str = "s1", **kw: Any
) -> ShipmentEvent:
    return ShipmentEvent(kw.pop("event_id", _id()), CUSTOMER, at, kind, order, shipment, **kw)


def app(kind: str, at: datetime, **kw: Any) -> AppUsageEvent:
    return AppUsageEvent(kw.pop("event_id", _id()), CUSTOMER, at, kind, **kw)


def prefs(
    at: datetime = T0 - timedelta(days=1),
    *,
    marketing: bool = False,
    quiet: tuple[int, int] | None = None,
    timezone: str = "Europe/Berlin",
    phone: str | None = "+4915112345678",
    **consent: bool,
) -> PreferencesEvent:
    return PreferencesEvent(
        _id(),
        CUSTOMER,
        at,
        Consent(**consent),
        marketing_opt_in=marketing,
        quiet_hours=QuietHours(*quiet) if quiet else None,
        timezone=timezone,
        email="ada@example.org",
        phone=phone,
    )


@dataclass
class Sent:
    journey: str
    step: str
    channels: tuple[str, ...]
    at: datetime


@dataclass
class Scenario:
    book: JourneyBook = BOOK
    now: datetime = T0
    state: CustomerState | None = None
    log: list[tuple[datetime, Command]] = field(default_factory=list)
    scheduled_log: list[Touchpoint] = field(default_factory=list)  # what decisions scheduled

    def __post_init__(self) -> None:
        self.engine = JourneyEngine(self.book)

    def feed(self, event: Event, lag: timedelta = timedelta(seconds=1)) -> list[Command]:
        """Deliver ``event`` ``lag`` after it happened (or now, if the clock is already later)."""
        self.now = max(self.now, event.occurred_at + lag)
        return self._decide(event)

    def advance(self, delta: timedelta) -> list[Command]:
        """Let time pass, waking the customer whenever something is due, as the scheduler does."""
        until = self.now + delta
        commands: list[Command] = []
        while self.state is not None:
            wake = self.engine.next_wakeup(self.state)
            if wake is None or wake > until:
                break
            self.now = max(self.now, wake)
            commands += self._decide(Wake(CUSTOMER, self.now))
        self.now = until
        return commands

    def _decide(self, event: Event) -> list[Command]:
        decision = self.engine.decide(self.state, event, self.now)
        self.state = decision.state
        self.last = decision
        self.log += [(self.now, c) for c in decision.commands]
        self.scheduled_log += decision.scheduled
        return list(decision.commands)

    # -- reading what happened ----------------------------------------------------------------

    def sent(self) -> list[Sent]:
        return [
            Sent(c.touchpoint.journey, c.touchpoint.step, tuple(ch.value for ch in c.channels), at)
            for at, c in self.log
            if isinstance(c, SendTouchpoint)
        ]

    def sent_journeys(self) -> list[str]:
        return [s.journey for s in self.sent()]

    def cancelled(self) -> list[tuple[str, str, str]]:
        return [
            (c.touchpoint.journey, c.outcome.value, c.reason)
            for _, c in self.log
            if isinstance(c, CancelTouchpoint)
        ]

    def scheduled(self) -> list[str]:
        return [touchpoint.journey for touchpoint in self.scheduled_log]


def book_with(**changes: Any) -> JourneyBook:
    return replace(BOOK, **changes)
