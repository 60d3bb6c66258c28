"""The simulated population: reproducible, in order, accepted by the worker, and lively enough that
every default journey has its moment in the default 45-day run."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.names import TopicRole
from pipeline.simulate.population import Plan, SimEvent, count_events, simulate
from pipeline.validation import phone_problem
from tests.unit.simulate.replay import Replay

DEFAULT = Plan()


@pytest.fixture(scope="module")
def events() -> list[SimEvent]:
    return list(simulate(DEFAULT))


def _types(events: list[SimEvent], role: TopicRole) -> Counter[str]:
    return Counter(e.record["type"] for e in events if e.role is role)


# -- reproducible, ordered, inside the window --------------------------------------------------


def test_the_same_plan_gives_the_same_events_and_another_seed_others() -> None:
    plan = Plan(customers=60, days=20, seed=7)
    first = list(simulate(plan))
    assert first == list(simulate(plan))
    assert [e.record for e in first] != [e.record for e in simulate(Plan(60, 20, seed=8))]


@pytest.mark.parametrize(
    "plan",
    [
        DEFAULT,
        Plan(customers=50, days=3, seed=1),
        Plan(customers=30, days=90, seed=2, start=datetime(2026, 10, 24, 23, 59, 59, 1500, UTC)),
    ],
    ids=["default", "three-days", "odd-start"],
)
def test_events_come_in_time_order_inside_the_window(plan: Plan) -> None:
    previous = plan.start
    for event in simulate(plan):
        assert previous <= event.at < plan.end
        assert event.at == event.record["occurred_at"]
        assert event.at.tzinfo is UTC
        assert event.at.microsecond % 1000 == 0
        previous = event.at


def test_event_ids_are_unique_and_every_customer_shows_up(events: list[SimEvent]) -> None:
    assert len({e.record["event_id"] for e in events}) == len(events)
    assert len({e.customer_id for e in events}) == DEFAULT.customers
    assert all(e.customer_id == e.record["customer_id"] for e in events)


def test_count_events_is_exact_for_small_plans_and_close_for_large_ones(
    events: list[SimEvent],
) -> None:
    assert count_events(DEFAULT) == len(events)
    plan = Plan(customers=1500, seed=3)
    exact = count_events(plan, sample=plan.customers)
    assert abs(count_events(plan, sample=300) - exact) < 0.1 * exact


def test_a_million_customers_start_streaming_at_once() -> None:
    # Lazy: the first events come out without planning the whole population first.
    first = list(itertools.islice(simulate(Plan(customers=1_000_000)), 100))
    assert len({e.record["event_id"] for e in first}) == 100


@pytest.mark.parametrize(
    "plan",
    [
        {"customers": -1},
        {"days": 0},
        {"days": -3},
        {"start": datetime(2026, 3, 2, 8, 0)},  # noqa: DTZ001 - the mistake under test
    ],
)
def test_a_plan_that_cannot_be_simulated_is_refused(plan: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="plan"):
        Plan(**plan)  # type: ignore[arg-type]


# -- what the population does ------------------------------------------------------------------


def test_customers_live_around_the_world_in_two_languages(events: list[SimEvent]) -> None:
    placed = [e.record for e in events if e.role is TopicRole.PURCHASES and e.record["contact"]]
    zones = {r["contact"]["timezone"] for r in placed}
    assert {"Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney"} <= zones
    assert {r["contact"]["locale"][:2] for r in placed} >= {"de", "en"}
    assert len({r["currency"] for r in placed}) >= 4
    assert any(r["contact"]["phone"] is None for r in placed)  # not everyone gives a number


def test_every_kind_of_event_happens(events: list[SimEvent]) -> None:
    assert set(_types(events, TopicRole.PURCHASES)) == {
        "ORDER_PLACED",
        "PAYMENT_SUCCEEDED",
        "PAYMENT_FAILED",
        "ORDER_CANCELLED",
        "ORDER_REFUNDED",
    }
    assert set(_types(events, TopicRole.SHIPMENTS)) == {
        "LABEL_CREATED",
        "SHIPPED",
        "OUT_FOR_DELIVERY",
        "DELIVERED",
        "DELAYED",
        "DELIVERY_FAILED",
        "RETURNED",
    }
    assert set(_types(events, TopicRole.APP_USAGE)) == {
        "APP_OPENED",
        "FEATURE_USED",
        "SETUP_COMPLETED",
        "PUSH_TOKEN_REGISTERED",
        "FEEDBACK_SUBMITTED",
        "SUPPORT_REQUESTED",
    }


def test_orders_start_early_some_customers_come_back_and_some_parcels_split(
    events: list[SimEvent],
) -> None:
    orders: dict[str, list[datetime]] = defaultdict(list)
    parcels: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.role is TopicRole.PURCHASES and e.record["type"] == "ORDER_PLACED":
            orders[e.customer_id].append(e.at)
        if e.role is TopicRole.SHIPMENTS:
            parcels[e.record["order_id"]].add(e.record["shipment_id"])
    firsts = [min(times) for times in orders.values()]
    early = sum(1 for at in firsts if at < DEFAULT.start + timedelta(days=11))
    assert early / len(firsts) > 0.95
    assert sum(1 for times in orders.values() if len(times) > 1) > 0.1 * len(orders)
    assert any(len(ids) == 2 for ids in parcels.values())


def test_baskets_are_priced_in_minor_units(events: list[SimEvent]) -> None:
    placed = [
        e.record
        for e in events
        if e.role is TopicRole.PURCHASES and e.record["type"] == "ORDER_PLACED"
    ]
    categories = {item["category"] for r in placed for item in r["items"]}
    assert {"coffee-machines", "grinders", "coffee", "cleaning"} <= categories
    for record in placed:
        goods = sum(i["quantity"] * i["unit_price_minor"] for i in record["items"])
        assert record["items"]
        assert all(i["unit_price_minor"] > 0 for i in record["items"])
        assert goods <= record["total_minor"] <= goods + 1000  # plus shipping, sometimes


def test_customers_change_their_minds_about_being_contacted(events: list[SimEvent]) -> None:
    pictures: dict[str, list[dict[str, object]]] = defaultdict(list)
    for e in events:
        if e.role is TopicRole.PREFERENCES:
            pictures[e.customer_id].append(e.record)
    assert any(p["quiet_hours"] for ps in pictures.values() for p in ps)

    def turned_off(key: str) -> int:
        return sum(
            1
            for ps in pictures.values()
            if any(_flag(a, key) and not _flag(b, key) for a, b in itertools.pairwise(ps))
        )

    assert turned_off("sms") > 0
    assert turned_off("marketing_opt_in") > 0
    assert sum(1 for ps in pictures.values() if any(_flag(p, "push") for p in ps)) > 50


def test_ratings_come_high_and_low(events: list[SimEvent]) -> None:
    ratings = Counter(
        e.record["rating"] for e in events if e.record.get("type") == "FEEDBACK_SUBMITTED"
    )
    assert set(ratings) == {1, 2, 3, 4, 5}
    assert ratings[5] > ratings[1]


def _flag(picture: dict[str, object], key: str) -> bool:
    if key == "marketing_opt_in":
        return bool(picture[key])
    consent = picture["consent"]
    assert isinstance(consent, dict)
    return bool(consent[key])


def test_every_phone_number_is_one_a_carrier_could_have_assigned() -> None:
    # More customers than the default run, so that every region and mobile prefix shows up.
    phones = {
        contact["phone"]
        for event in simulate(Plan(customers=2000, days=1))
        if (contact := event.record.get("contact", event.record)) and contact.get("phone")
    }
    assert len(phones) > 1500
    assert {phone: phone_problem(phone) for phone in phones if phone_problem(phone)} == {}


# -- through the worker's intake and the journey core -------------------------------------------


@pytest.fixture(scope="module")
def replay() -> Replay:
    run = Replay()
    run.run(DEFAULT)
    return run


def test_the_worker_admits_every_event(replay: Replay) -> None:
    assert replay.refused == []


def test_every_default_journey_dispatches_in_the_default_run(replay: Replay) -> None:
    journeys = [journey.name for journey in replay.engine.book.journeys]
    assert len(journeys) == 17
    silent = [name for name in journeys if replay.dispatched[name] == 0]
    assert silent == [], f"never dispatched: {silent}; dispatched: {dict(replay.dispatched)}"
