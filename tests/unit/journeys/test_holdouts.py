"""Holdout groups: who is held out is fixed by the key, the unit and the customer; a held-out
touchpoint ends SUPPRESSED `holdout` exactly when it would have been sent; transactional never."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.journeys.holdout import (
    DEFAULT_KEY,
    GLOBAL_UNIT,
    Holdouts,
    bucket,
    held_out,
    journey_unit,
    percent,
    step_unit,
)
from pipeline.journeys.model import CancelTouchpoint, Priority
from pipeline.journeysfile import JourneysFileError, load_journeys, parse_journeys
from tests.unit.journeys.scenario import (
    BOOK,
    CUSTOMER,
    T0,
    Scenario,
    book_with,
    parcel,
    placed,
    prefs,
)

DAY = timedelta(days=1)
CUSTOMERS = [f"cust-{n}" for n in range(20_000)]

# -- assignment --------------------------------------------------------------------------------


def test_assignment_is_pinned_so_running_experiments_survive_an_upgrade() -> None:
    # Changing the hash would move customers between groups in the middle of a measurement.
    assert bucket(DEFAULT_KEY, journey_unit("cross_sell"), "c3") == PINNED["c3"]
    assert bucket(DEFAULT_KEY, GLOBAL_UNIT, "c1") == PINNED["global:c1"]
    assert bucket("another key", journey_unit("cross_sell"), "c3") == PINNED["other:c3"]


PINNED = {"c3": 633, "global:c1": 2517, "other:c3": 1877}


def test_the_share_held_out_is_the_share_asked_for() -> None:
    held = sum(held_out(DEFAULT_KEY, journey_unit("need_help"), c, 1000) for c in CUSTOMERS)
    assert 0.09 < held / len(CUSTOMERS) < 0.11
    held = sum(held_out(DEFAULT_KEY, journey_unit("need_help"), c, 250) for c in CUSTOMERS)
    assert 0.02 < held / len(CUSTOMERS) < 0.03
    assert not any(held_out(DEFAULT_KEY, journey_unit("need_help"), c, 0) for c in CUSTOMERS)


def test_journeys_and_keys_draw_independent_groups() -> None:
    def group(key: str, unit: str) -> set[str]:
        return {c for c in CUSTOMERS if held_out(key, unit, c, 2000)}

    a = group(DEFAULT_KEY, journey_unit("need_help"))
    b = group(DEFAULT_KEY, journey_unit("cross_sell"))
    c = group("spring-2027", journey_unit("need_help"))
    d = group(DEFAULT_KEY, step_unit("need_help", "offer"))
    for other in (b, c, d):  # independent: about 20% of 20% overlap
        assert 0.03 < len(a & other) / len(CUSTOMERS) < 0.05


def test_transactional_touchpoints_are_never_held_out() -> None:
    everyone = Holdouts(global_share=9999, journeys={"order_confirmation": 9999})
    assert all(
        everyone.reason(c, "order_confirmation", "confirm", Priority.TRANSACTIONAL) is None
        for c in CUSTOMERS[:2000]
    )
    held = [everyone.reason(c, "x", "y", Priority.MARKETING) for c in CUSTOMERS[:2000]]
    assert sum(r is not None for r in held) > 1990
    assert {r for r in held if r} == {"global holdout 99.99%"}


def test_shares_read_as_people_write_them() -> None:
    assert [percent(s) for s in (1000, 250, 5, 9999)] == ["10%", "2.5%", "0.05%", "99.99%"]


# -- the journeys file -------------------------------------------------------------------------

FILE = """
version: 1
holdouts: {key: spring-2027, global: 2.5%}
journeys:
  education:
    priority: engagement
    trigger: DELIVERED
    holdout: 10%
    steps:
      - {name: tips, delay: 1d, channels: [email], validity: 2d}
      - {name: more, delay: 3d, channels: [email], validity: 2d, holdout: 50%}
  receipt:
    priority: transactional
    trigger: ORDER_PLACED
    steps:
      - {name: confirm, channels: [email], validity: 1d}
"""


def test_the_journeys_file_declares_holdouts_per_journey_per_step_and_globally() -> None:
    holdouts = parse_journeys(FILE).holdouts
    assert holdouts == Holdouts(
        "spring-2027", 250, {"education": 1000}, {("education", "more"): 5000}
    )


def test_the_default_journeys_hold_out_ten_percent_of_what_keeps_in_touch() -> None:
    holdouts = load_journeys().holdouts
    assert holdouts.global_share == 0
    assert holdouts.journeys == {
        "product_education": 1000,
        "need_help": 1000,
        "reengagement": 1000,
        "cross_sell": 1000,
    }


def test_the_scenarios_customer_is_in_no_default_holdout_group() -> None:
    for journey in BOOK.journeys:
        for step in journey.steps:
            assert BOOK.holdouts.reason(CUSTOMER, journey.name, step.name, journey.priority) is None


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (("    holdout: 10%", "    holdout: 10"), 8, "not a share like 10% or 2.5%"),
        (("    holdout: 10%", "    holdout: 100%"), 8, "must be under 100%"),
        (("global: 2.5%", "globl: 2.5%"), 3, "did you mean 'global'"),
        (
            ("trigger: ORDER_PLACED", "trigger: ORDER_PLACED\n    holdout: 5%"),
            15,
            "a transactional journey has no holdout",
        ),
        (
            ("channels: [email], validity: 1d}", "channels: [email], validity: 1d, holdout: 5%}"),
            16,
            "journeys.receipt.steps[0]: a transactional journey has no holdout",
        ),
    ],
)
def test_a_wrong_holdout_is_refused_with_its_line(
    change: tuple[str, str], line: int, message: str
) -> None:
    with pytest.raises(JourneysFileError) as caught:
        parse_journeys(FILE.replace(*change), "journeys.yaml")
    assert caught.value.line == line
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"journeys.yaml:{line}: ")


# -- in the engine -----------------------------------------------------------------------------


def _holding(journey: str, *, held: bool) -> Scenario:
    """A scenario whose customer is (or is just not) in ``journey``'s holdout group."""
    position = bucket(DEFAULT_KEY, journey_unit(journey), CUSTOMER)
    share = position + 1 if held else position  # held out: bucket < share
    book = book_with(holdouts=Holdouts(journeys={journey: share}))
    return Scenario(book=book)


def _delivered(run: Scenario) -> Scenario:
    run.feed(prefs())
    run.feed(placed())
    run.feed(parcel("SHIPPED", T0 + DAY))
    run.feed(parcel("DELIVERED", T0 + 2 * DAY))
    return run


def test_a_held_out_customer_is_recorded_suppressed_holdout_when_it_would_have_gone() -> None:
    run = _delivered(_holding("product_education", held=True))
    run.advance(DAY + timedelta(minutes=1))
    assert "product_education" not in run.sent_journeys()
    (held,) = [
        (at, c) for at, c in run.log if isinstance(c, CancelTouchpoint) and c.reason == "holdout"
    ]
    at, command = held
    assert command.touchpoint.journey == "product_education"
    assert command.outcome.value == "SUPPRESSED"
    assert command.detail.startswith("journey holdout ")
    assert at == command.touchpoint.due_at == T0 + 3 * DAY  # when it would have been sent
    # Transactional alerts about the same parcel still went.
    assert {"order_confirmation", "shipped", "delivered"} <= set(run.sent_journeys())


def test_the_customer_just_outside_the_share_gets_it() -> None:
    run = _delivered(_holding("product_education", held=False))
    run.advance(DAY + timedelta(minutes=1))
    assert "product_education" in run.sent_journeys()
    assert ("product_education", "SUPPRESSED", "holdout") not in run.cancelled()


def test_a_holdout_counts_against_the_frequency_cap_as_a_send_would() -> None:
    # So that what comes next is capped alike, held out or not: product_education (day 1) held
    # out, need_help (day 3) sent, two engagement touchpoints counted either way.
    for held in (True, False):
        run = _delivered(_holding("product_education", held=held))
        run.advance(5 * DAY)
        assert "need_help" in run.sent_journeys()
        assert run.state is not None
        assert len(run.state.engagement_sends) == 2


def test_a_customer_who_would_not_get_it_anyway_is_not_counted_as_held_out() -> None:
    # No email consent, no app: nothing could carry it, so it is no_consent, not holdout.
    run = _holding("product_education", held=True)
    run.feed(prefs(email=False, in_app=False))
    run.feed(placed())
    run.feed(parcel("DELIVERED", T0 + 2 * DAY))
    run.advance(2 * DAY)
    reasons = [r for j, _, r in run.cancelled() if j == "product_education"]
    assert reasons == ["no_consent"]
