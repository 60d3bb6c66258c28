"""Rendering a beat as the Avro record of its event, when it is due."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pipeline.journeys.holdout import Holdouts
from pipeline.journeys.model import Priority
from pipeline.names import TopicRole
from pipeline.simulate.beats import _FIRST_PARCEL, _GOODWILL, _KINDS, _Life, _unpack
from pipeline.simulate.plan import DAY, MILLISECOND, Plan, SimEvent, _local, _zone
from pipeline.simulate.world import (
    _CANCELLED,
    _COMMENTS,
    _DELAYED,
    _DELIVERY_FAILED,
    _DOMAINS,
    _FEATURES,
    _FEATURES_OF,
    _FIRST_NAMES,
    _LAST_NAMES,
    _NO_COMMENT,
    _PAYMENT_FAILED,
    _PLATFORMS,
    _QUIET_HOURS,
    _REFUNDED,
    _REGIONS,
    _RETURNED,
    _SETUP_FEATURE,
    _basket,
    _Region,
)

# -- rendering a beat as a record ----------------------------------------------------------------


def _render(plan: Plan, origin: datetime, life: _Life) -> SimEvent:
    offset, kind, order, parcel, arg = _unpack(life.beats[life.pos])
    at = origin + offset * MILLISECOND
    role, name = _KINDS[kind]
    profile = life.profile
    region = _REGIONS[profile & 31]
    customer = _customer_id(plan.seed, life.index)
    record: dict[str, Any] = {
        "event_id": f"{customer}-{life.pos:03d}",
        "customer_id": customer,
        "occurred_at": at,
    }
    salt = profile >> 8
    german = region.german
    order_id = f"{customer}-o{order}"
    if role is TopicRole.PREFERENCES:
        quiet = _QUIET_HOURS[arg >> 6]
        record.update(
            consent={
                "email": bool(arg & 1),
                "sms": bool(arg & 2),
                "whatsapp": bool(arg & 4),
                "push": bool(arg & 8),
                "in_app": bool(arg & 16),
            },
            marketing_opt_in=bool(arg & 32),
            unsubscribed=[],
            quiet_hours=None
            if quiet is None
            else {"start_minute": quiet[0], "end_minute": quiet[1]},
            timezone=region.timezone,
            locale=region.locale,
            email=_email(life.index, salt, german),
            phone=_phone(region, salt) if profile >> 7 & 1 else None,
        )
    elif role is TopicRole.PURCHASES:
        basket = _basket(plan.seed, life.index, order, region)
        reason: str | None = None
        total = basket.total_minor
        if name == "PAYMENT_FAILED":
            reason = _PAYMENT_FAILED[arg][german]
        elif name == "ORDER_CANCELLED":
            reason = _CANCELLED[arg][german]
        elif name == "ORDER_REFUNDED":
            reason = _REFUNDED[arg & 7][german]
            amount = arg >> 3
            if amount == _FIRST_PARCEL:
                total = basket.first_parcel_minor()
            elif amount == _GOODWILL:
                total = int(round(total * 0.15, -2))
        placed = name == "ORDER_PLACED"
        record.update(
            type=name,
            order_id=order_id,
            items=[
                {
                    "sku": line.product.sku,
                    "name": line.product.name_de if german else line.product.name,
                    "category": line.product.category,
                    "quantity": line.quantity,
                    "unit_price_minor": line.unit_price_minor,
                }
                for line in basket.lines
            ]
            if placed
            else [],
            total_minor=total,
            currency=basket.currency,
            contact={
                "email": _email(life.index, salt, german),
                "phone": _phone(region, salt) if profile >> 7 & 1 else None,
                "locale": region.locale,
                "timezone": region.timezone,
            }
            if placed
            else None,
            reason=reason,
        )
    elif role is TopicRole.SHIPMENTS:
        carrier = region.carriers[(salt + 7 * order + parcel) % len(region.carriers)]
        shipment = f"{order_id}-p{parcel}"
        code = hashlib.sha256(f"{plan.seed}:{shipment}".encode()).hexdigest()[:14].upper()
        slug = "".join(c if c.isalnum() else "-" for c in carrier.lower())
        eta: datetime | None = None
        reason = None
        if name in ("SHIPPED", "DELAYED"):
            zone = _zone(region.timezone)
            day = at.astimezone(zone).date() + (arg & 31) * DAY
            eta = _local(day, 18 * 60, zone)
        if name == "DELAYED":
            reason = _DELAYED[arg >> 5][german]
        elif name == "DELIVERY_FAILED":
            reason = _DELIVERY_FAILED[arg][german]
        elif name == "RETURNED":
            reason = _RETURNED[arg][german]
        record.update(
            type=name,
            order_id=order_id,
            shipment_id=shipment,
            carrier=carrier,
            tracking_url=f"https://tracking.example.com/{slug}/{code}",
            eta=eta,
            reason=reason,
        )
    else:
        platform = _PLATFORMS[profile >> 5 & 3]
        record.update(
            type=name,
            order_id=None,
            sku=None,
            feature=None,
            push_token=None,
            platform=platform,
            rating=None,
            comment=None,
        )
        bought = _basket(plan.seed, life.index, order, region) if order else None
        if name == "PUSH_TOKEN_REGISTERED":
            record["push_token"] = _push_token(plan.seed, life.index, platform)
        elif name == "FEATURE_USED":
            feature = _FEATURES[arg]
            record["feature"] = feature
            if bought is not None:
                line = bought.setup_line() if arg == _SETUP_FEATURE else None
                line = line or next(
                    (li for li in bought.lines if arg in _FEATURES_OF.get(li.product.category, ())),
                    bought.lines[0],
                )
                record["sku"] = line.product.sku
        elif name == "SETUP_COMPLETED" and bought is not None:
            line = bought.setup_line() or bought.lines[0]
            record.update(order_id=order_id, sku=line.product.sku)
        elif name == "FEEDBACK_SUBMITTED" and bought is not None:
            comment = arg >> 3 & 63
            record.update(
                order_id=order_id,
                sku=bought.lines[0].product.sku,
                rating=arg & 7,
                comment=None if comment == _NO_COMMENT else _COMMENTS[comment][german],
                platform="WEB" if arg >> 9 & 1 else platform,
            )
        elif name == "SUPPORT_REQUESTED":
            record.update(order_id=order_id if order else None, comment=_COMMENTS[arg][german])
    return SimEvent(at, role, record)


def _gets(holdouts: Holdouts, customer: str, journey: str, step: str, priority: Priority) -> bool:
    """Whether the customer is outside the holdout groups of that journey step."""
    return holdouts.reason(customer, journey, step, priority) is None


def _customer_id(seed: int, index: int) -> str:
    return f"sim{seed}-{index:07d}"


def _email(index: int, salt: int, german: bool) -> str:
    first = _FIRST_NAMES[not german][salt % 16]
    last = _LAST_NAMES[not german][salt >> 4 & 15]
    return f"{first}.{last}.{index}@{_DOMAINS[(salt >> 8) % len(_DOMAINS)]}"


def _phone(region: _Region, salt: int) -> str:
    prefix = region.mobile[(salt >> 10) % len(region.mobile)]
    number = (salt >> 12) % 10**region.digits
    return f"{region.dial}{prefix}{number:0{region.digits}d}"


def _push_token(seed: int, index: int, platform: str | None) -> str:
    digest = hashlib.sha256(f"aftercare-simulate:{seed}:{index}:push".encode()).hexdigest()
    if platform == "IOS":
        return digest  # an APNs device token: 32 bytes as hex
    return f"{digest[:22]}:APA91b{digest[22:]}"  # the shape of an FCM registration token
