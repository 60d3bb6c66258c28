"""Every topic name, record name and (later) table and metric name, in one place.

Topic *roles* are fixed by the design; the topic *names* are defaults that configuration may
change (see :mod:`pipeline.config`). Code refers to a topic by its role and asks the settings for
its name, so that no topic name is spelled twice.
"""

from __future__ import annotations

from enum import StrEnum

SCHEMA_NAMESPACE = "io.aftercare.v1"


class TopicRole(StrEnum):
    """What a topic is for. The value is also its default name."""

    PURCHASES = "purchases"
    SHIPMENTS = "shipments"
    APP_USAGE = "app-usage"
    PREFERENCES = "preferences"
    DISPATCH = "dispatch"
    DELIVERIES = "deliveries"
    DEAD_LETTERS = "dead-letters"


# The topics upstream systems write to. They are co-partitioned: same key (customer_id), same
# partition count, so one worker sees every event of a customer.
INPUT_ROLES: tuple[TopicRole, ...] = (
    TopicRole.PURCHASES,
    TopicRole.SHIPMENTS,
    TopicRole.APP_USAGE,
    TopicRole.PREFERENCES,
)

# The record type (Avro full name) each topic carries.
RECORD_OF_TOPIC: dict[TopicRole, str] = {
    TopicRole.PURCHASES: f"{SCHEMA_NAMESPACE}.PurchaseEvent",
    TopicRole.SHIPMENTS: f"{SCHEMA_NAMESPACE}.ShipmentEvent",
    TopicRole.APP_USAGE: f"{SCHEMA_NAMESPACE}.AppUsageEvent",
    TopicRole.PREFERENCES: f"{SCHEMA_NAMESPACE}.PreferencesEvent",
    TopicRole.DISPATCH: f"{SCHEMA_NAMESPACE}.TouchpointCommand",
    TopicRole.DELIVERIES: f"{SCHEMA_NAMESPACE}.DeliveryOutcome",
    TopicRole.DEAD_LETTERS: f"{SCHEMA_NAMESPACE}.DeadLetter",
}
