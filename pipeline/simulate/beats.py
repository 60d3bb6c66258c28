"""Beats: one event of a planned life, packed into 64 bits (time in the high bits)."""

from __future__ import annotations

from array import array

from pipeline.names import TopicRole

# -- beats: one event of a planned life, packed into 64 bits ----------------------------------

_KINDS: tuple[tuple[TopicRole, str], ...] = (
    (TopicRole.PREFERENCES, "PREFERENCES"),
    (TopicRole.PURCHASES, "ORDER_PLACED"),
    (TopicRole.PURCHASES, "PAYMENT_FAILED"),
    (TopicRole.PURCHASES, "PAYMENT_SUCCEEDED"),
    (TopicRole.PURCHASES, "ORDER_CANCELLED"),
    (TopicRole.PURCHASES, "ORDER_REFUNDED"),
    (TopicRole.SHIPMENTS, "LABEL_CREATED"),
    (TopicRole.SHIPMENTS, "SHIPPED"),
    (TopicRole.SHIPMENTS, "DELAYED"),
    (TopicRole.SHIPMENTS, "OUT_FOR_DELIVERY"),
    (TopicRole.SHIPMENTS, "DELIVERY_FAILED"),
    (TopicRole.SHIPMENTS, "DELIVERED"),
    (TopicRole.SHIPMENTS, "RETURNED"),
    (TopicRole.APP_USAGE, "APP_OPENED"),
    (TopicRole.APP_USAGE, "PUSH_TOKEN_REGISTERED"),
    (TopicRole.APP_USAGE, "FEATURE_USED"),
    (TopicRole.APP_USAGE, "SETUP_COMPLETED"),
    (TopicRole.APP_USAGE, "SUPPORT_REQUESTED"),
    (TopicRole.APP_USAGE, "FEEDBACK_SUBMITTED"),
)
_KIND = {name: number for number, (_, name) in enumerate(_KINDS)}

# From the low bits up: arg (13), parcel (2), order (4), kind (5), then milliseconds since the
# run's origin (40). Sorting beats sorts them by time; equal times by kind, order and parcel.
_ARG_BITS, _PARCEL_BITS, _ORDER_BITS, _KIND_BITS = 13, 2, 4, 5
_TIME_SHIFT = _ARG_BITS + _PARCEL_BITS + _ORDER_BITS + _KIND_BITS
MAX_ORDERS = (1 << _ORDER_BITS) - 1

# What `arg` holds, by kind:
#   PREFERENCES         consent bits (email, sms, whatsapp, push, in_app), marketing << 5,
#                       quiet-hours choice << 6
#   PAYMENT_FAILED, ORDER_CANCELLED, DELIVERY_FAILED, RETURNED: the reason's index
#   ORDER_REFUNDED      reason | amount << 3 (0: the whole order, 1: its first parcel, 2: 15 %)
#   SHIPPED             days from today (local) to the expected delivery
#   DELAYED             days to the new expected delivery | reason << 5
#   FEATURE_USED        the feature's index
#   FEEDBACK_SUBMITTED  rating | comment << 3 | from the web << 9
#   SUPPORT_REQUESTED   comment
_FULL, _FIRST_PARCEL, _GOODWILL = 0, 1, 2


def _pack(offset_ms: int, kind: str, order: int, parcel: int, arg: int) -> int:
    beat = offset_ms << _KIND_BITS | _KIND[kind]
    beat = beat << _ORDER_BITS | order
    beat = beat << _PARCEL_BITS | parcel
    return beat << _ARG_BITS | arg


def _unpack(beat: int) -> tuple[int, int, int, int, int]:
    """(offset_ms, kind, order, parcel, arg)"""
    arg = beat & ((1 << _ARG_BITS) - 1)
    beat >>= _ARG_BITS
    parcel = beat & ((1 << _PARCEL_BITS) - 1)
    beat >>= _PARCEL_BITS
    order = beat & ((1 << _ORDER_BITS) - 1)
    beat >>= _ORDER_BITS
    return beat >> _KIND_BITS, beat & ((1 << _KIND_BITS) - 1), order, parcel, arg


class _Life:
    """A customer's planned events, and how far the stream has come through them."""

    __slots__ = ("beats", "index", "pos", "profile")

    def __init__(self, index: int, profile: int, beats: array[int]) -> None:
        self.index = index
        self.profile = profile  # region | platform << 5 | has_phone << 7 | salt << 8
        self.beats = beats
        self.pos = 0
