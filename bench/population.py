"""A deterministic population of customers' post-purchase events, for the benchmarks."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.names import TopicRole

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CATEGORIES = ("coffee-machines", "grinders", "coffee", "milk-frothers", "cups")


def population(
    customers: int, seed: int = 7, first: int = 0
) -> list[tuple[TopicRole, dict[str, Any]]]:
    """About 6 events per customer over three days, in event-time order; customers are numbered
    from ``first`` (so that two populations can follow each other without sharing anyone)."""
    rng = random.Random(seed + first)
    events: list[tuple[TopicRole, dict[str, Any]]] = []
    for n in range(first, first + customers):
        customer = f"cust-{n:07d}"
        t = START + timedelta(seconds=rng.randrange(0, 3600))
        order = f"order-{n:07d}"
        events.append((TopicRole.PREFERENCES, _prefs(customer, t - timedelta(minutes=5), rng)))
        events.append((TopicRole.PURCHASES, _placed(customer, order, t, rng)))
        events.append(
            (TopicRole.APP_USAGE, _app(customer, t + timedelta(minutes=30), "APP_OPENED"))
        )
        events.append(
            (TopicRole.SHIPMENTS, _parcel(customer, order, t + timedelta(hours=20), "SHIPPED"))
        )
        events.append(
            (TopicRole.SHIPMENTS, _parcel(customer, order, t + timedelta(hours=44), "DELIVERED"))
        )
        events.append(
            (TopicRole.APP_USAGE, _app(customer, t + timedelta(hours=50), "SETUP_COMPLETED"))
        )
    events.sort(key=lambda e: e[1]["occurred_at"])
    return events


def _prefs(customer: str, at: datetime, rng: random.Random) -> dict[str, Any]:
    return {
        "event_id": f"{customer}-prefs",
        "customer_id": customer,
        "occurred_at": at,
        "consent": {
            "email": True,
            "sms": rng.random() < 0.5,
            "whatsapp": rng.random() < 0.3,
            "push": rng.random() < 0.6,
            "in_app": True,
        },
        "marketing_opt_in": rng.random() < 0.4,
        "quiet_hours": None,
        "timezone": rng.choice(["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"]),
        "locale": rng.choice(["en", "de-DE"]),
        "email": f"{customer}@example.org",
        "phone": f"+49151{rng.randrange(10**7, 10**8)}",
    }


def _placed(customer: str, order: str, at: datetime, rng: random.Random) -> dict[str, Any]:
    items = [
        {
            "sku": f"SKU-{rng.randrange(1000)}",
            "name": "Product",
            "category": rng.choice(CATEGORIES),
            "quantity": rng.randrange(1, 3),
            "unit_price_minor": rng.randrange(500, 60000),
        }
        for _ in range(rng.randrange(1, 4))
    ]
    return {
        "event_id": f"{order}-placed",
        "customer_id": customer,
        "occurred_at": at,
        "type": "ORDER_PLACED",
        "order_id": order,
        "items": items,
        "total_minor": sum(i["quantity"] * i["unit_price_minor"] for i in items),
        "currency": "EUR",
        "contact": None,
        "reason": None,
    }


def _parcel(customer: str, order: str, at: datetime, kind: str) -> dict[str, Any]:
    return {
        "event_id": f"{order}-{kind}",
        "customer_id": customer,
        "occurred_at": at,
        "type": kind,
        "order_id": order,
        "shipment_id": f"{order}-p1",
        "carrier": "DHL",
        "tracking_url": f"https://tracking.example.org/{order}",
        "eta": None,
        "reason": None,
    }


def _app(customer: str, at: datetime, kind: str) -> dict[str, Any]:
    return {
        "event_id": f"{customer}-{kind}-{int(at.timestamp())}",
        "customer_id": customer,
        "occurred_at": at,
        "type": kind,
        "order_id": None,
        "sku": None,
        "feature": None,
        "push_token": None,
        "platform": None,
        "rating": None,
        "comment": None,
    }
