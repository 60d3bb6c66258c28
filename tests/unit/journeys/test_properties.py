"""Properties that hold for any interleaving, duplication and reordering of a customer's events."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.journeys.engine import JourneyEngine
from pipeline.journeys.kinds import DELIVERED_STAGE, SHIPMENT_STAGES
from pipeline.journeys.model import (
    CancelTouchpoint,
    Command,
    CustomerState,
    Decision,
    Event,
    Priority,
    PurchaseEvent,
    SendTouchpoint,
    Touchpoint,
    Wake,
)
from pipeline.journeysfile import load_journeys
from tests.unit.journeys.scenario import CUSTOMER, T0, app, parcel, placed, prefs, purchase

BOOK = load_journeys()
EXIT_JOURNEYS = {j.name for j in BOOK.journeys if j.trigger in BOOK.exits}
HOUR = timedelta(hours=1)
PROPERTIES = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

orders = st.sampled_from(["o1", "o2"])
hours = st.integers(min_value=0, max_value=24 * 40)


@st.composite
def life_events(draw: st.DrawFn) -> Event:
    at = T0 + draw(hours) * HOUR
    order = draw(orders)
    kind = draw(
        st.sampled_from(
            [
                "placed",
                "PAYMENT_FAILED",
                "ORDER_CANCELLED",
                "ORDER_REFUNDED",
                "SHIPPED",
                "OUT_FOR_DELIVERY",
                "DELIVERED",
                "DELAYED",
                "RETURNED",
                "APP_OPENED",
                "SETUP_COMPLETED",
                "FEEDBACK_SUBMITTED",
                "PUSH_TOKEN_REGISTERED",
                "prefs",
            ]
        )
    )
    if kind == "placed":
        return placed(order, at=at)
    if kind.startswith(("PAYMENT", "ORDER")):
        return purchase(kind, order, at=at)
    if kind in ("SHIPPED", "OUT_FOR_DELIVERY", "DELIVERED", "DELAYED", "RETURNED"):
        return parcel(kind, at, order=order, shipment=draw(st.sampled_from(["s1", "s2"])))
    if kind == "FEEDBACK_SUBMITTED":
        return app(kind, at, order_id=order, rating=draw(st.integers(1, 5)))
    if kind == "PUSH_TOKEN_REGISTERED":
        return app(kind, at, push_token="tok")
    if kind == "prefs":
        consent = {c: draw(st.booleans()) for c in ("email", "sms", "whatsapp", "push", "in_app")}
        return prefs(at, marketing=draw(st.booleans()), **consent)
    return app(kind, at)


@st.composite
def deliveries(draw: st.DrawFn) -> list[tuple[Event, timedelta]]:
    """Events with the delay after which each arrives; some delivered twice."""
    events = draw(st.lists(life_events(), min_size=1, max_size=25))
    duplicated = events + draw(st.lists(st.sampled_from(events), max_size=5))
    lags = [draw(st.integers(0, 72)) * HOUR for _ in duplicated]
    arrivals = sorted(zip(duplicated, lags, strict=True), key=lambda el: el[0].occurred_at + el[1])
    return arrivals


@dataclass(frozen=True)
class Scheduled:
    """A touchpoint a decision scheduled for later, in the run's list beside the commands."""

    touchpoint: Touchpoint


def _moves(decision: Decision) -> list[Command | Scheduled]:
    return [*map(Scheduled, decision.scheduled), *decision.commands]


def _run(
    arrivals: list[tuple[Event, timedelta]],
) -> tuple[list[tuple[Command, CustomerState]], CustomerState]:
    engine = JourneyEngine(BOOK)
    state: CustomerState | None = None
    now = T0
    out: list[tuple[Command | Scheduled, CustomerState]] = []
    for event, lag in arrivals:
        # Wake for everything due before this arrival, as the scheduler would.
        while state is not None and (wake := engine.next_wakeup(state)) is not None:
            if wake > event.occurred_at + lag:
                break
            now = max(now, wake)
            decision = engine.decide(state, Wake(CUSTOMER, now), now)
            state = decision.state
            out += [(c, state) for c in _moves(decision)]
        now = max(now, event.occurred_at + lag)
        decision = engine.decide(state, event, now)
        state = decision.state
        out += [(c, state) for c in _moves(decision)]
    assert state is not None
    end = now + timedelta(days=90)
    while (wake := engine.next_wakeup(state)) is not None and wake <= end:
        now = max(now, wake)
        decision = engine.decide(state, Wake(CUSTOMER, now), now)
        state = decision.state
        out += [(c, state) for c in _moves(decision)]
    return out, state


@PROPERTIES
@given(deliveries())
def test_one_id_one_touchpoint_and_exactly_one_ending(
    arrivals: list[tuple[Event, timedelta]],
) -> None:
    commands, final = _run(arrivals)
    contents = defaultdict(set)
    endings: dict[str, int] = defaultdict(int)
    scheduled = set()
    for command, _ in commands:
        contents[command.touchpoint.touchpoint_id].add(command.touchpoint)
        if isinstance(command, Scheduled):
            scheduled.add(command.touchpoint.touchpoint_id)
        else:
            endings[command.touchpoint.touchpoint_id] += 1
    assert all(len(versions) == 1 for versions in contents.values())  # never two contents
    assert all(count == 1 for count in endings.values())  # never sent twice, never two outcomes
    assert scheduled <= set(endings)  # every scheduled touchpoint ended
    assert final.pending == ()


@PROPERTIES
@given(deliveries())
def test_nothing_is_sent_for_an_order_after_it_was_cancelled_or_refunded(
    arrivals: list[tuple[Event, timedelta]],
) -> None:
    commands, _ = _run(arrivals)
    closed: set[str] = set()
    # Closing events take effect when they arrive; replay the command stream in order.
    closing = {
        e.event_id: e.order_id
        for e, _ in arrivals
        if isinstance(e, PurchaseEvent) and e.kind in ("ORDER_CANCELLED", "ORDER_REFUNDED")
    }
    for command, _ in commands:
        touchpoint = command.touchpoint
        if touchpoint.trigger_event_id in closing:
            closed.add(closing[touchpoint.trigger_event_id])
        if isinstance(command, SendTouchpoint) and touchpoint.order_id in closed:
            assert touchpoint.journey in EXIT_JOURNEYS, touchpoint.journey


@PROPERTIES
@given(deliveries())
def test_engagement_goes_only_to_consented_channels(
    arrivals: list[tuple[Event, timedelta]],
) -> None:
    commands, _ = _run(arrivals)
    for command, state in commands:
        if isinstance(command, SendTouchpoint):
            assert all(state.preferences.consent.allows(c) for c in command.channels)
            if command.touchpoint.priority is Priority.MARKETING:
                assert state.preferences.marketing_opt_in


@PROPERTIES
@given(deliveries())
def test_every_ending_outside_a_send_has_a_reason(arrivals: list[tuple[Event, timedelta]]) -> None:
    commands, _ = _run(arrivals)
    for command, _ in commands:
        if isinstance(command, CancelTouchpoint):
            assert command.reason


@PROPERTIES
@given(deliveries())
def test_however_late_events_arrive_no_shipping_news_goes_out_for_a_parcel_already_delivered(
    arrivals: list[tuple[Event, timedelta]],
) -> None:
    # Beyond the worker's idle bound an event may be read hours after a later one: the core
    # still never sends "shipped" for a parcel it knows delivered, nor the "not shipped yet"
    # notice for an order it knows shipped.
    commands, _ = _run(arrivals)
    for command, state in commands:
        if not isinstance(command, SendTouchpoint):
            continue
        touchpoint = command.touchpoint
        order = state.order(touchpoint.order_id) if touchpoint.order_id else None
        if touchpoint.journey == "shipped" and order is not None:
            parcel_ = order.shipment(touchpoint.context.shipment_id or "")
            assert parcel_ is None or parcel_.stage < DELIVERED_STAGE
        if touchpoint.journey == "not_shipped_watchdog" and order is not None:
            assert order.max_stage < SHIPMENT_STAGES["SHIPPED"]
