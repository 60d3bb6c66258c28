"""The journey core's vocabulary: events in, state kept, commands out. Frozen dataclasses only.

Nothing here knows Kafka, Avro or the clock. The worker turns decoded records into these events,
hands them to :meth:`pipeline.journeys.engine.JourneyEngine.decide` with the clock's reading, stores
the returned state and carries out the returned commands.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Any, TypeVar, cast

from pipeline.journeys.kinds import EventKind

_T = TypeVar("_T")


def evolve(value: _T, **changes: Any) -> _T:
    """A copy of a frozen dataclass ``value`` with ``changes``: ``dataclasses.replace``, quicker.

    The engine makes about ten copies per decision; ``replace`` builds each through the generated
    ``__init__`` (a frozen class sets every field through ``object.__setattr__``) and was a third
    of a decision's time. These classes have no ``__post_init__``, so copying the fields is the same
    value. Unknown field names are refused, as ``replace`` refuses them: every field is in the
    instance's ``__dict__``, so a change that adds a name is one that names no field.
    """
    original = value.__dict__
    copy: _T = object.__new__(type(value))
    attributes = copy.__dict__
    attributes.update(original)
    attributes.update(changes)
    if len(attributes) != len(original):
        cls: Any = type(value)
        unknown = ", ".join(sorted(set(changes) - _field_names(cls)))
        raise TypeError(f"{cls.__name__} has no field {unknown}")
    return copy


@cache
def _field_names(cls: Hashable) -> frozenset[str]:
    return frozenset(f.name for f in fields(cast(Any, cls)))


class Channel(StrEnum):
    EMAIL = "EMAIL"
    SMS = "SMS"
    WHATSAPP = "WHATSAPP"
    PUSH = "PUSH"
    IN_APP = "IN_APP"
    WEBHOOK = "WEBHOOK"


# Channels that reach a phone: they wait out quiet hours unless a touchpoint is urgent.
PHONE_CHANNELS = frozenset({Channel.SMS, Channel.WHATSAPP, Channel.PUSH})


class Priority(StrEnum):
    TRANSACTIONAL = "TRANSACTIONAL"
    ENGAGEMENT = "ENGAGEMENT"
    MARKETING = "MARKETING"


class Outcome(StrEnum):
    """How a touchpoint ended without being dispatched (the rest end in the senders)."""

    SUPPRESSED = "SUPPRESSED"
    EXPIRED = "EXPIRED"


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineItem:
    sku: str
    name: str
    category: str
    quantity: int
    unit_price_minor: int


@dataclass(frozen=True)
class ContactUpdate:
    """Contact details an event brings; None leaves what is known unchanged."""

    email: str | None = None
    phone: str | None = None
    locale: str | None = None
    timezone: str | None = None


@dataclass(frozen=True)
class PurchaseEvent:
    event_id: str
    customer_id: str
    occurred_at: datetime
    kind: EventKind  # one of kinds.PURCHASE_KINDS
    order_id: str
    items: tuple[LineItem, ...] = ()
    total_minor: int = 0
    currency: str = "EUR"
    contact: ContactUpdate | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ShipmentEvent:
    event_id: str
    customer_id: str
    occurred_at: datetime
    kind: EventKind  # one of kinds.SHIPMENT_KINDS
    order_id: str
    shipment_id: str
    carrier: str | None = None
    tracking_url: str | None = None
    eta: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class AppUsageEvent:
    event_id: str
    customer_id: str
    occurred_at: datetime
    kind: EventKind  # one of kinds.APP_KINDS
    order_id: str | None = None
    sku: str | None = None
    push_token: str | None = None
    rating: int | None = None


@dataclass(frozen=True)
class QuietHours:
    """A daily window in local time, minutes after midnight; wraps midnight when start > end."""

    start_minute: int
    end_minute: int


@dataclass(frozen=True)
class Consent:
    email: bool = True
    sms: bool = False
    whatsapp: bool = False
    push: bool = False
    in_app: bool = True

    def allows(self, channel: Channel) -> bool:
        if channel is Channel.WEBHOOK:
            return True  # goes to the business (support, CRM), not to the customer
        return bool(getattr(self, _CONSENT_FIELD[channel]))


# The Consent field of each channel (an enum's ``.value`` is a slow property on this path).
_CONSENT_FIELD = {channel: channel.value.lower() for channel in Channel}


@dataclass(frozen=True)
class PreferencesEvent:
    event_id: str
    customer_id: str
    occurred_at: datetime
    consent: Consent
    marketing_opt_in: bool = False
    unsubscribed: tuple[Channel, ...] = ()  # engagement and marketing only; transactional goes
    quiet_hours: QuietHours | None = None
    timezone: str | None = None
    locale: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class PreferencesErased:
    """A tombstone on preferences: forget this customer's preferences (back to the defaults)."""

    customer_id: str
    occurred_at: datetime
    event_id: str = ""


@dataclass(frozen=True)
class Wake:
    """Time has passed: fire whatever is due. Sent by the scheduler, never by upstream."""

    customer_id: str
    occurred_at: datetime
    event_id: str = ""


Event = PurchaseEvent | ShipmentEvent | AppUsageEvent | PreferencesEvent | PreferencesErased | Wake


# -- state -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    email: str | None = None
    phone: str | None = None
    push_token: str | None = None
    locale: str | None = None
    timezone: str | None = None
    updated_at: datetime | None = None  # event time of the newest details applied


@dataclass(frozen=True)
class Preferences:
    consent: Consent = field(default_factory=Consent)
    marketing_opt_in: bool = False
    quiet_hours: QuietHours | None = None
    updated_at: datetime | None = None  # event time of the preferences applied; older ones lose
    # Unsubscribed from these for engagement and marketing (one-click); transactional still goes.
    unsubscribed: tuple[Channel, ...] = ()


@dataclass(frozen=True)
class ShipmentState:
    shipment_id: str
    stage: int  # see kinds.SHIPMENT_STAGES
    stage_at: datetime
    carrier: str | None = None
    tracking_url: str | None = None
    eta: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class OrderState:
    order_id: str
    placed_at: datetime | None = None
    items: tuple[LineItem, ...] = ()
    total_minor: int | None = None
    currency: str | None = None
    closed_by: EventKind | None = None  # one of kinds.CLOSING_KINDS: no journey starts after it
    returned_at: datetime | None = None
    delivered_at: datetime | None = None
    setup_completed_at: datetime | None = None
    rating: int | None = None
    shipments: tuple[ShipmentState, ...] = ()
    started: tuple[str, ...] = ()  # scope keys of journeys already started: start each once
    last_event_at: datetime | None = None

    def shipment(self, shipment_id: str) -> ShipmentState | None:
        for shipment in self.shipments:
            if shipment.shipment_id == shipment_id:
                return shipment
        return None

    @property
    def max_stage(self) -> int:
        return max((s.stage for s in self.shipments), default=0)


@dataclass(frozen=True)
class TouchpointContext:
    """What the message talks about."""

    items: tuple[LineItem, ...] = ()
    total_minor: int | None = None
    currency: str | None = None
    shipment_id: str | None = None
    carrier: str | None = None
    tracking_url: str | None = None
    eta: datetime | None = None
    reason: str | None = None
    categories: tuple[str, ...] = ()
    rating: int | None = None
    variables: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Touchpoint:
    """One message of one journey step, for one customer, due at one instant."""

    touchpoint_id: str
    customer_id: str
    journey: str
    step: str
    order_id: str | None
    priority: Priority
    urgent: bool
    channels: tuple[Channel, ...]  # the journey's preference order
    template: str
    context: TouchpointContext
    trigger_event_id: str
    trigger_occurred_at: datetime
    due_at: datetime  # trigger time + delay: part of the id, never moved
    expires_at: datetime


@dataclass(frozen=True)
class Pending:
    touchpoint: Touchpoint
    not_before: datetime  # due_at, or later when quiet hours deferred it
    # Due, but no channel allowed (no consent, no address) when it was: tried again on every
    # event until ``not_before``, in case preferences that happened earlier arrive late.
    awaiting_consent: bool = False
    # A step with a digest: held until this instant with whatever else of its digest comes due by
    # then, and sent with them as one message.
    digest_until: datetime | None = None

    @property
    def touchpoint_id(self) -> str:
        return self.touchpoint.touchpoint_id


@dataclass(frozen=True)
class CustomerState:
    customer_id: str
    contact: Contact = field(default_factory=Contact)
    preferences: Preferences = field(default_factory=Preferences)
    orders: tuple[OrderState, ...] = ()
    pending: tuple[Pending, ...] = ()
    last_app_activity: datetime | None = None
    reengaged_for: datetime | None = None  # the activity whose quiet period was acted on
    engagement_sends: tuple[datetime, ...] = ()  # dispatch times, for frequency caps
    seen_event_ids: tuple[str, ...] = ()  # recent event ids, newest last: duplicates change nothing

    def order(self, order_id: str) -> OrderState | None:
        for order in self.orders:
            if order.order_id == order_id:
                return order
        return None


# -- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    email: str | None
    phone: str | None
    push_token: str | None
    locale: str
    timezone: str


@dataclass(frozen=True)
class SendTouchpoint:
    """Dispatch now, on the first of ``channels`` that works (all allowed for this customer)."""

    touchpoint: Touchpoint
    channels: tuple[Channel, ...]
    recipient: Recipient
    # A digest: the other touchpoints this message stands for (each ended SUPPRESSED ``digest``).
    members: tuple[Touchpoint, ...] = ()


@dataclass(frozen=True)
class CancelTouchpoint:
    """The touchpoint ends here, not sent: recorded as ``outcome`` with ``reason``."""

    touchpoint: Touchpoint
    outcome: Outcome
    reason: str
    detail: str = ""


Command = SendTouchpoint | CancelTouchpoint  # what the worker carries out: each is published


@dataclass(frozen=True)
class Decision:
    state: CustomerState
    commands: tuple[Command, ...] = ()
    used: bool = True  # False: a duplicate or stale event that changed nothing
    note: str = ""  # why it was not used: "duplicate", "stale", ...
    # Touchpoints this decision started that are due later. Nothing to carry out: they wait in
    # ``state.pending`` until they fire or are cancelled, each ending in exactly one command.
    scheduled: tuple[Touchpoint, ...] = ()
