"""One valid record of every schema, for tests to start from and override."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.names import RECORD_OF_TOPIC, TopicRole

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def purchase(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "evt-purchase-1",
        "customer_id": "cust-1",
        "occurred_at": T0,
        "type": "ORDER_PLACED",
        "order_id": "order-1",
        "items": [
            {
                "sku": "CM-900",
                "name": "Barista 900 espresso machine",
                "category": "coffee-machines",
                "quantity": 1,
                "unit_price_minor": 49900,
            },
            {
                "sku": "BEANS-1KG",
                "name": "House blend beans 1 kg",
                "category": "coffee",
                "quantity": 2,
                "unit_price_minor": 1850,
            },
        ],
        "total_minor": 53600,
        "currency": "EUR",
        "contact": {
            "email": "ada@example.org",
            "phone": "+4915112345678",
            "locale": "de-DE",
            "timezone": "Europe/Berlin",
        },
        "reason": None,
    }
    record.update(overrides)
    return record


def shipment(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "evt-shipment-1",
        "customer_id": "cust-1",
        "occurred_at": T0 + timedelta(days=1),
        "type": "DELAYED",
        "order_id": "order-1",
        "shipment_id": "ship-1",
        "carrier": "DHL",
        "tracking_url": "https://tracking.example.org/ship-1",
        "eta": T0 + timedelta(days=4),
        "reason": "Weather in the hub",
    }
    record.update(overrides)
    return record


def app_usage(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "evt-app-1",
        "customer_id": "cust-1",
        "occurred_at": T0 + timedelta(days=5),
        "type": "FEEDBACK_SUBMITTED",
        "order_id": "order-1",
        "sku": "CM-900",
        "feature": None,
        "push_token": None,
        "platform": "ANDROID",
        "rating": 2,
        "comment": "The milk frother leaks",
    }
    record.update(overrides)
    return record


def preferences(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "evt-prefs-1",
        "customer_id": "cust-1",
        "occurred_at": T0 - timedelta(days=30),
        "consent": {"email": True, "sms": True, "whatsapp": False, "push": True, "in_app": True},
        "marketing_opt_in": False,
        "unsubscribed": [],
        "quiet_hours": {"start_minute": 22 * 60, "end_minute": 8 * 60},
        "timezone": "Europe/Berlin",
        "locale": "de-DE",
        "email": "ada@example.org",
        "phone": "+4915112345678",
    }
    record.update(overrides)
    return record


def touchpoint_command(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "tp-1",
        "customer_id": "cust-1",
        "occurred_at": T0 + timedelta(seconds=1),
        "touchpoint_id": "tp-1",
        "journey": "order_confirmation",
        "step": "confirm",
        "order_id": "order-1",
        "priority": "TRANSACTIONAL",
        "urgent": False,
        "channels": ["EMAIL"],
        "recipient": {
            "email": "ada@example.org",
            "phone": None,
            "push_token": None,
            "locale": "de-DE",
            "timezone": "Europe/Berlin",
        },
        "template": "order_confirmation.confirm",
        "context": {
            "items": purchase()["items"],
            "total_minor": 53600,
            "currency": "EUR",
            "shipment_id": None,
            "carrier": None,
            "tracking_url": None,
            "eta": None,
            "reason": None,
            "categories": ["coffee-machines", "coffee"],
            "rating": None,
            "variables": {"support_url": "https://shop.example.org/help"},
        },
        "trigger_event_id": "evt-purchase-1",
        "trigger_occurred_at": T0,
        "due_at": T0,
        "expires_at": T0 + timedelta(hours=24),
        "digest": [],
    }
    record.update(overrides)
    return record


def delivery_outcome(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "tp-1",
        "customer_id": "cust-1",
        "occurred_at": T0 + timedelta(seconds=2),
        "touchpoint_id": "tp-1",
        "journey": "order_confirmation",
        "step": "confirm",
        "order_id": "order-1",
        "priority": "TRANSACTIONAL",
        "status": "DELIVERED",
        "reason": None,
        "detail": None,
        "channel": "EMAIL",
        "attempts": 1,
        "provider_message_id": "<tp-1@aftercare>",
        "trigger_occurred_at": T0,
        "dispatched_at": T0 + timedelta(seconds=1),
        "accepted_at": T0 + timedelta(seconds=2),
        "due_at": T0,
    }
    record.update(overrides)
    return record


def dead_letter(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "purchases:3:42",
        "customer_id": "cust-1",
        "occurred_at": T0,
        "source_topic": "purchases",
        "source_partition": 3,
        "source_offset": 42,
        "source_timestamp": T0,
        "key": b"cust-1",
        "value": b"{not avro}",
        "headers": [{"key": "trace", "value": b"abc"}],
        "error": "NOT_AVRO",
        "reason": "the value starts with 7b 6e, not the Avro single-object marker c3 01",
        "schema_fingerprint": None,
        "consumer": "worker",
    }
    record.update(overrides)
    return record


def due_notice(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "due:cust-1:1772443800000",
        "customer_id": "cust-1",
        "occurred_at": T0,
    }
    record.update(overrides)
    return record


def inbox_message(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "tp-1",
        "customer_id": "cust-1",
        "occurred_at": T0,
        "touchpoint_id": "tp-1",
        "journey": "need_help",
        "step": "offer",
        "order_id": "order-1",
        "title": "Need a hand with your Barista 900?",
        "body": "Our setup guide takes five minutes.",
        "locale": "en",
        "expires_at": T0 + timedelta(days=2),
    }
    record.update(overrides)
    return record


# Every record type with its sample, by topic role.
SAMPLES = {
    TopicRole.PURCHASES: purchase,
    TopicRole.SHIPMENTS: shipment,
    TopicRole.APP_USAGE: app_usage,
    TopicRole.PREFERENCES: preferences,
    TopicRole.DISPATCH: touchpoint_command,
    TopicRole.DELIVERIES: delivery_outcome,
    TopicRole.DEAD_LETTERS: dead_letter,
    TopicRole.DUE_NOTICES: due_notice,
    TopicRole.INBOX: inbox_message,
}

FULL_NAMES = {role: RECORD_OF_TOPIC[role] for role in SAMPLES}
