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
    DUE_NOTICES = "due-notices"  # internal: the scheduler's notices to the worker itself
    INBOX = "inbox"  # in-app messages, read by the app backend


# The topics upstream systems write to. They are co-partitioned: same key (customer_id), same
# partition count, so one worker sees every event of a customer.
INPUT_ROLES: tuple[TopicRole, ...] = (
    TopicRole.PURCHASES,
    TopicRole.SHIPMENTS,
    TopicRole.APP_USAGE,
    TopicRole.PREFERENCES,
)

# Everything the worker consumes: the inputs and its own due-notices, all keyed and partitioned
# alike, so that each reaches the worker that owns the customer's table partition.
COPARTITIONED_ROLES: tuple[TopicRole, ...] = (*INPUT_ROLES, TopicRole.DUE_NOTICES)

# The worker's table of customers' journey state; its changelog topic is
# "<worker id>-customers-changelog".
CUSTOMERS_TABLE = "customers"

# The record type (Avro full name) each topic carries.
RECORD_OF_TOPIC: dict[TopicRole, str] = {
    TopicRole.PURCHASES: f"{SCHEMA_NAMESPACE}.PurchaseEvent",
    TopicRole.SHIPMENTS: f"{SCHEMA_NAMESPACE}.ShipmentEvent",
    TopicRole.APP_USAGE: f"{SCHEMA_NAMESPACE}.AppUsageEvent",
    TopicRole.PREFERENCES: f"{SCHEMA_NAMESPACE}.PreferencesEvent",
    TopicRole.DISPATCH: f"{SCHEMA_NAMESPACE}.TouchpointCommand",
    TopicRole.DELIVERIES: f"{SCHEMA_NAMESPACE}.DeliveryOutcome",
    TopicRole.DEAD_LETTERS: f"{SCHEMA_NAMESPACE}.DeadLetter",
    TopicRole.DUE_NOTICES: f"{SCHEMA_NAMESPACE}.DueNotice",
    TopicRole.INBOX: f"{SCHEMA_NAMESPACE}.InboxMessage",
}
