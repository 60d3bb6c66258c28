"""Between the wire and the journey core: decoded Avro records to events, commands to records.

The only place that knows both the schemas' field names and the core's dataclasses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipeline.intake import Admitted, Tombstone
from pipeline.journeys.kinds import kind_of
from pipeline.journeys.model import (
    AppUsageEvent,
    CancelTouchpoint,
    Channel,
    Consent,
    ContactUpdate,
    Event,
    LineItem,
    Outcome,
    PreferencesErased,
    PreferencesEvent,
    PurchaseEvent,
    QuietHours,
    SendTouchpoint,
    ShipmentEvent,
    Touchpoint,
)
from pipeline.names import TopicRole
from pipeline.records import Status, delivery_outcome


def to_event(taken: Admitted | Tombstone, now: datetime) -> Event:
    """The core's event for an admitted input record."""
    if isinstance(taken, Tombstone):
        return PreferencesErased(taken.customer_id, now)
    record = taken.record
    common = (record["event_id"], record["customer_id"], record["occurred_at"])
    if taken.role is TopicRole.PURCHASES:
        contact = record.get("contact")
        return PurchaseEvent(
            *common,
            kind=kind_of(record["type"]),
            order_id=record["order_id"],
            items=tuple(LineItem(**item) for item in record.get("items") or ()),
            total_minor=record.get("total_minor", 0),
            currency=record.get("currency", "EUR"),
            contact=ContactUpdate(**contact) if contact else None,
            reason=record.get("reason"),
        )
    if taken.role is TopicRole.SHIPMENTS:
        return ShipmentEvent(
            *common,
            kind=kind_of(record["type"]),
            order_id=record["order_id"],
            shipment_id=record["shipment_id"],
            carrier=record.get("carrier"),
            tracking_url=record.get("tracking_url"),
            eta=record.get("eta"),
            reason=record.get("reason"),
        )
    if taken.role is TopicRole.APP_USAGE:
        return AppUsageEvent(
            *common,
            kind=kind_of(record["type"]),
            order_id=record.get("order_id"),
            sku=record.get("sku"),
            push_token=record.get("push_token"),
            rating=record.get("rating"),
        )
    if taken.role is TopicRole.PREFERENCES:
        quiet = record.get("quiet_hours")
        return PreferencesEvent(
            *common,
            consent=Consent(**record["consent"]),
            marketing_opt_in=record.get("marketing_opt_in", False),
            unsubscribed=tuple(Channel(c) for c in record.get("unsubscribed") or ()),
            quiet_hours=QuietHours(**quiet) if quiet else None,
            timezone=record.get("timezone"),
            locale=record.get("locale"),
            email=record.get("email"),
            phone=record.get("phone"),
        )
    raise ValueError(f"{taken.role} is not an input topic")


def dispatch_record(command: SendTouchpoint, now: datetime) -> dict[str, Any]:
    """The TouchpointCommand record for ``dispatch``."""
    touchpoint = command.touchpoint
    recipient = command.recipient
    return {
        "event_id": touchpoint.touchpoint_id,
        "customer_id": touchpoint.customer_id,
        "occurred_at": now,
        **_identity(touchpoint),
        "urgent": touchpoint.urgent,
        "channels": [channel.value for channel in command.channels],
        "recipient": {
            "email": recipient.email,
            "phone": recipient.phone,
            "push_token": recipient.push_token,
            "locale": recipient.locale,
            "timezone": recipient.timezone,
        },
        "template": touchpoint.template,
        "context": _context(touchpoint),
        "trigger_event_id": touchpoint.trigger_event_id,
        "trigger_occurred_at": touchpoint.trigger_occurred_at,
        "due_at": touchpoint.due_at,
        "expires_at": touchpoint.expires_at,
        "digest": [
            {
                "touchpoint_id": member.touchpoint_id,
                "order_id": member.order_id,
                "due_at": member.due_at,
                "context": _context(member),
            }
            for member in command.members
        ],
    }


# The status of each way a touchpoint ends in the worker (a lookup, not an Enum call per record).
_STATUS = {outcome: Status(outcome.value) for outcome in Outcome}


def outcome_record(command: CancelTouchpoint, now: datetime) -> dict[str, Any]:
    """The DeliveryOutcome record for a touchpoint that ended in the worker, not sent."""
    touchpoint = command.touchpoint
    return delivery_outcome(
        touchpoint_id=touchpoint.touchpoint_id,
        customer_id=touchpoint.customer_id,
        journey=touchpoint.journey,
        step=touchpoint.step,
        order_id=touchpoint.order_id,
        priority=touchpoint.priority,
        status=_STATUS[command.outcome],
        reason=command.reason,
        detail=command.detail or None,
        channel=None,
        attempts=0,
        provider_message_id=None,
        trigger_occurred_at=touchpoint.trigger_occurred_at,
        dispatched_at=None,
        accepted_at=None,
        due_at=touchpoint.due_at,
        now=now,
    )


def _identity(touchpoint: Touchpoint) -> dict[str, Any]:
    return {
        "touchpoint_id": touchpoint.touchpoint_id,
        "journey": touchpoint.journey,
        "step": touchpoint.step,
        "order_id": touchpoint.order_id,
        "priority": touchpoint.priority.value,
    }


def _context(touchpoint: Touchpoint) -> dict[str, Any]:
    context = touchpoint.context
    return {
        "items": [
            {
                "sku": item.sku,
                "name": item.name,
                "category": item.category,
                "quantity": item.quantity,
                "unit_price_minor": item.unit_price_minor,
            }
            for item in context.items
        ],
        "total_minor": context.total_minor,
        "currency": context.currency,
        "shipment_id": context.shipment_id,
        "carrier": context.carrier,
        "tracking_url": context.tracking_url,
        "eta": context.eta,
        "reason": context.reason,
        "categories": list(context.categories),
        "rating": context.rating,
        "variables": dict(context.variables),
    }
