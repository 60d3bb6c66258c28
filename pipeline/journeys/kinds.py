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


K = EventKind

PURCHASE_KINDS = (
    K.ORDER_PLACED,
    K.PAYMENT_SUCCEEDED,
    K.PAYMENT_FAILED,
    K.ORDER_CANCELLED,
    K.ORDER_REFUNDED,
)
SHIPMENT_KINDS = (
    K.LABEL_CREATED,
    K.SHIPPED,
    K.OUT_FOR_DELIVERY,
    K.DELIVERED,
    K.DELAYED,
    K.DELIVERY_FAILED,
    K.RETURNED,
)
APP_KINDS = (
    K.APP_OPENED,
    K.FEATURE_USED,
    K.SETUP_COMPLETED,
    K.PUSH_TOKEN_REGISTERED,
    K.FEEDBACK_SUBMITTED,
    K.SUPPORT_REQUESTED,
)
APP_QUIET = K.APP_QUIET
EVENT_KINDS = PURCHASE_KINDS + SHIPMENT_KINDS + APP_KINDS  # what an input event may be
TRIGGERS = (*EVENT_KINDS, APP_QUIET)  # what may start a journey

# How far a parcel has come: a stage reached is never left, so an event of a stage not above the
# parcel's is old news.
SHIPMENT_STAGES: dict[str, int] = {
    K.LABEL_CREATED: 1,
    K.SHIPPED: 2,
    K.OUT_FOR_DELIVERY: 3,
    K.DELIVERED: 4,
    K.RETURNED: 5,
}
SHIPPED_STAGE = SHIPMENT_STAGES[K.SHIPPED]
DELIVERED_STAGE = SHIPMENT_STAGES[K.DELIVERED]
_NO_PARCEL_NEWS = max(SHIPMENT_STAGES.values()) + 1
# Parcel news that moves no stage: news only while the parcel is on its way (before DELIVERED).
NEWS_UNTIL_DELIVERED = frozenset({K.DELAYED, K.DELIVERY_FAILED})
# What ends an order: its pending touchpoints exit (as the journeys file's `exits:` says).
CLOSING_KINDS = frozenset({K.ORDER_CANCELLED, K.ORDER_REFUNDED})
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
