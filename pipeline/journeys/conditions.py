"""The conditions a journey or a step may name, each once: what it checks and what it takes.

The journeys file reader accepts exactly the names registered here (and a number for those that
take one); the engine evaluates a condition by looking its check up here. A new condition is one
function and one line of :data:`CONDITIONS`.

A check sees the customer's state, the order the touchpoint is about (None for one about no
order), the trigger's event time, the rating the trigger carried (feedback) and the condition's
own number, if it takes one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from pipeline.journeys.kinds import SHIPPED_STAGE
from pipeline.journeys.model import CustomerState, OrderState

Check = Callable[[CustomerState, OrderState | None, datetime, int | None, int | None], bool]


@dataclass(frozen=True)
class ConditionRule:
    """One condition: its check, and whether it takes a rating (``{name: 1..5}``)."""

    check: Check
    takes_rating: bool = False


def _not_shipped(state: CustomerState, order: OrderState | None, *_: object) -> bool:
    return order is None or order.max_stage < SHIPPED_STAGE


def _not_delivered(state: CustomerState, order: OrderState | None, *_: object) -> bool:
    return order is None or order.delivered_at is None


def _not_returned(state: CustomerState, order: OrderState | None, *_: object) -> bool:
    return order is None or order.returned_at is None


def _not_closed(state: CustomerState, order: OrderState | None, *_: object) -> bool:
    return order is None or order.closed_by is None


def _no_setup_since_delivery(state: CustomerState, order: OrderState | None, *_: object) -> bool:
    if order is None or order.delivered_at is None:
        return True
    return order.setup_completed_at is None or order.setup_completed_at < order.delivered_at


def _no_feedback_yet(state: CustomerState, order: OrderState | None, *_: object) -> bool:
    return order is None or order.rating is None


def _app_quiet_since_trigger(
    state: CustomerState, order: OrderState | None, trigger_at: datetime, *_: object
) -> bool:
    return state.last_app_activity is None or state.last_app_activity <= trigger_at


def _rating_at_most(
    state: CustomerState,
    order: OrderState | None,
    trigger_at: datetime,
    rating: int | None,
    value: int | None,
) -> bool:
    return rating is not None and value is not None and rating <= value


def _rating_at_least(
    state: CustomerState,
    order: OrderState | None,
    trigger_at: datetime,
    rating: int | None,
    value: int | None,
) -> bool:
    return rating is not None and value is not None and rating >= value


CONDITIONS: Mapping[str, ConditionRule] = {
    "not_shipped": ConditionRule(_not_shipped),
    "not_delivered": ConditionRule(_not_delivered),
    "not_returned": ConditionRule(_not_returned),
    "not_closed": ConditionRule(_not_closed),
    "no_setup_since_delivery": ConditionRule(_no_setup_since_delivery),
    "no_feedback_yet": ConditionRule(_no_feedback_yet),
    "app_quiet_since_trigger": ConditionRule(_app_quiet_since_trigger),
    "rating_at_most": ConditionRule(_rating_at_most, takes_rating=True),
    "rating_at_least": ConditionRule(_rating_at_least, takes_rating=True),
}
