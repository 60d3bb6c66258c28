"""What each kind of event means to a journey, in one place.

The input schemas name the kinds (their ``type`` enums); this module says what the core makes of
each: which topic it comes on, how far a parcel has come with it, which kinds close an order,
which are parcel news that only matter until the parcel arrives, and which count as app activity.
The engine and the journeys file reader both read these tables; nothing else spells a kind out.
"""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """An input event's ``type``, and the one trigger that is no event (``APP_QUIET``).

    A ``StrEnum``: a kind is equal to its name as text, so records decoded from Avro compare
    with it as they are.
    """

    # purchases
    ORDER_PLACED = "ORDER_PLACED"
    PAYMENT_SUCCEEDED = "PAYMENT_SUCCEEDED"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    ORDER_REFUNDED = "ORDER_REFUNDED"
    # shipments
    LABEL_CREATED = "LABEL_CREATED"
    SHIPPED = "SHIPPED"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    DELAYED = "DELAYED"
    DELIVERY_FAILED = "DELIVERY_FAILED"
    RETURNED = "RETURNED"
    # app usage
    APP_OPENED = "APP_OPENED"
    FEATURE_USED = "FEATURE_USED"
    SETUP_COMPLETED = "SETUP_COMPLETED"
    PUSH_TOKEN_REGISTERED = "PUSH_TOKEN_REGISTERED"
    FEEDBACK_SUBMITTED = "FEEDBACK_SUBMITTED"
    SUPPORT_REQUESTED = "SUPPORT_REQUESTED"
    # the absence trigger: no app activity for a journey's `quiet_for`
    APP_QUIET = "APP_QUIET"


_K = EventKind  # short, for the tables below

PURCHASE_KINDS = (
    _K.ORDER_PLACED,
    _K.PAYMENT_SUCCEEDED,
    _K.PAYMENT_FAILED,
    _K.ORDER_CANCELLED,
    _K.ORDER_REFUNDED,
)
SHIPMENT_KINDS = (
    _K.LABEL_CREATED,
    _K.SHIPPED,
    _K.OUT_FOR_DELIVERY,
    _K.DELIVERED,
    _K.DELAYED,
    _K.DELIVERY_FAILED,
    _K.RETURNED,
)
APP_KINDS = (
    _K.APP_OPENED,
    _K.FEATURE_USED,
    _K.SETUP_COMPLETED,
    _K.PUSH_TOKEN_REGISTERED,
    _K.FEEDBACK_SUBMITTED,
    _K.SUPPORT_REQUESTED,
)
APP_QUIET = _K.APP_QUIET
EVENT_KINDS = PURCHASE_KINDS + SHIPMENT_KINDS + APP_KINDS  # what an input event may be
TRIGGERS = (*EVENT_KINDS, APP_QUIET)  # what may start a journey

# How far a parcel has come: a stage reached is never left, so an event of a stage not above the
# parcel's is old news.
SHIPMENT_STAGES: dict[str, int] = {
    _K.LABEL_CREATED: 1,
    _K.SHIPPED: 2,
    _K.OUT_FOR_DELIVERY: 3,
    _K.DELIVERED: 4,
    _K.RETURNED: 5,
}
SHIPPED_STAGE = SHIPMENT_STAGES[_K.SHIPPED]
DELIVERED_STAGE = SHIPMENT_STAGES[_K.DELIVERED]
_NO_PARCEL_NEWS = max(SHIPMENT_STAGES.values()) + 1
# Parcel news that moves no stage: news only while the parcel is on its way (before DELIVERED).
NEWS_UNTIL_DELIVERED = frozenset({_K.DELAYED, _K.DELIVERY_FAILED})
# What ends an order: its pending touchpoints exit (as the journeys file's `exits:` says).
CLOSING_KINDS = frozenset({_K.ORDER_CANCELLED, _K.ORDER_REFUNDED})
# Every kind of app usage counts as activity (for the app-quiet watch).
APP_ACTIVITY = frozenset(APP_KINDS)

_KIND_OF = {kind.value: kind for kind in EventKind}


def kind_of(text: str) -> EventKind:
    """The kind named ``text`` (a ``KeyError`` if none is): a dict lookup, quicker than
    ``EventKind(text)`` for every record the worker reads."""
    return _KIND_OF[text]


def news_stage(kind: str) -> int:
    """The last stage of its parcel at which news of ``kind`` is still news: a touchpoint about
    it that still waits (quiet hours) is superseded by an event of a later stage. Above every
    stage for what is no parcel news, which no stage supersedes."""
    if kind in NEWS_UNTIL_DELIVERED:
        return DELIVERED_STAGE - 1
    return SHIPMENT_STAGES.get(kind, _NO_PARCEL_NEWS)
