"""The records the worker and the senders exchange, as typed values, each built or read once.

The worker publishes a TouchpointCommand to ``dispatch`` for every touchpoint it sends
(:func:`pipeline.worker.convert.dispatch_record`) and a DeliveryOutcome to ``deliveries`` for each
one it ends unsent; the senders read each dispatch record once, into a :class:`Dispatch`, and end
it with a DeliveryOutcome of their own. Both outcomes come from :func:`delivery_outcome`, so the
record analysts read has one shape whoever wrote it. Both sides publish through one
:class:`Publisher` (aiokafka's producer, or the worker's on Faust's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from pipeline.journeys.model import Channel, Priority, Recipient


class Status(StrEnum):
    """How a touchpoint ended: a DeliveryOutcome's ``status``."""

    DELIVERED = "DELIVERED"  # a provider accepted it (the senders)
    FAILED = "FAILED"  # every channel tried gave up (the senders)
    EXPIRED = "EXPIRED"  # past its validity, in the worker or in the senders
    SUPPRESSED = "SUPPRESSED"  # not sent, and why (the worker: consent, caps, exits, holdout ...)


class Publisher(Protocol):
    """What the worker, the senders and the intake need of a Kafka producer (aiokafka's
    AIOKafkaProducer has it; so does the worker's publisher on Faust's producer)."""

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, **kwargs: Any
    ) -> Awaitable[Any]:
        """Queue a record; the awaitable it returns completes when the broker has it."""
        ...

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, **kwargs: Any
    ) -> Any:
        """Publish a record and wait for the broker's acknowledgement."""
        ...


@dataclass(frozen=True)
class Dispatch:
    """A TouchpointCommand as the senders act on it, decoded once from its record.

    ``context`` is the touchpoint's context as published (what templates and structured channels
    show); ``record`` the whole record, for the templates, which may read any of it.
    """

    touchpoint_id: str
    customer_id: str
    journey: str
    step: str
    order_id: str | None
    priority: Priority
    channels: tuple[Channel, ...]  # all allowed for this customer, best first
    recipient: Recipient
    dispatched_at: datetime  # the record's occurred_at: when the worker decided to send it
    trigger_occurred_at: datetime
    due_at: datetime
    expires_at: datetime
    context: Mapping[str, Any]
    record: Mapping[str, Any]

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> Dispatch:
        """The dispatch of a TouchpointCommand record, as the codec decoded it."""
        recipient = record["recipient"]
        return cls(
            touchpoint_id=record["touchpoint_id"],
            customer_id=record["customer_id"],
            journey=record["journey"],
            step=record["step"],
            order_id=record.get("order_id"),
            priority=Priority(record["priority"]),
            channels=tuple(Channel(name) for name in record["channels"]),
            recipient=Recipient(
                email=recipient.get("email"),
                phone=recipient.get("phone"),
                push_token=recipient.get("push_token"),
                locale=recipient["locale"],
                timezone=recipient["timezone"],
            ),
            dispatched_at=record["occurred_at"],
            trigger_occurred_at=record["trigger_occurred_at"],
            due_at=record["due_at"],
            expires_at=record["expires_at"],
            context=record.get("context") or {},
            record=record,
        )


def delivery_outcome(
    *,
    touchpoint_id: str,
    customer_id: str,
    journey: str,
    step: str,
    order_id: str | None,
    priority: Priority,
    status: Status,
    reason: str | None,
    detail: str | None,
    channel: Channel | None,
    attempts: int,
    provider_message_id: str | None,
    trigger_occurred_at: datetime,
    dispatched_at: datetime | None,
    accepted_at: datetime | None,
    due_at: datetime,
    now: datetime,
) -> dict[str, Any]:
    """The DeliveryOutcome record (its ``event_id`` is the touchpoint id: one ending each)."""
    return {
        "event_id": touchpoint_id,
        "customer_id": customer_id,
        "occurred_at": now,
        "touchpoint_id": touchpoint_id,
        "journey": journey,
        "step": step,
        "order_id": order_id,
        "priority": priority.value,
        "status": status.value,
        "reason": reason,
        "detail": detail,
        "channel": channel.value if channel is not None else None,
        "attempts": attempts,
        "provider_message_id": provider_message_id,
        "trigger_occurred_at": trigger_occurred_at,
        "dispatched_at": dispatched_at,
        "accepted_at": accepted_at,
        "due_at": due_at,
    }
