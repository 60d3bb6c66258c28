"""The uplift report against a known truth: the simulated customers react to some journeys
(cross-sell brings orders, the offer of help brings setups and spares support requests) and not to
others; a run of the journey core with half of them held out must find the first and not the second.

The truth is measured, not assumed: each simulated customer's life is planned on its own, so the
same population can be simulated once with everybody getting a journey and once with nobody getting
it. The mean difference of an outcome between those two worlds, over the very touchpoints the
report compared, is the effect the report's interval has to contain.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest

from pipeline.analytics.uplift import (
    DEFAULT_WINDOW,
    RATES,
    REPEAT_PURCHASE,
    SETUP,
    SUPPORT,
    Behaviour,
    Group,
    Uplift,
    measure,
    outcomes,
)
from pipeline.journeys.engine import JourneyEngine
from pipeline.journeys.holdout import BASIS_POINTS, Holdouts
from pipeline.journeysfile import load_journeys
from pipeline.simulate.population import Plan, simulate
from tests.unit.simulate.replay import Replay

HALF = BASIS_POINTS // 2
MEASURED = ("product_education", "need_help", "reengagement", "cross_sell")
HOLDOUTS = Holdouts("planted-effects", 0, dict.fromkeys(MEASURED, HALF))
PLAN = Plan(customers=3000, days=60, seed=7, holdouts=HOLDOUTS)


@pytest.fixture(scope="module")
def uplift() -> Uplift:
    book = replace(load_journeys(), holdouts=HOLDOUTS)
    run = Replay(engine=JourneyEngine(book))
    run.run(PLAN)
    assert run.refused == []
    return measure(run.outcome_records, run.behaviour, run.dispatch_records)


def world(journey: str, share: int) -> Behaviour:
    """What the same customers do when ``share`` of them are held out of ``journey``."""
    holdouts = replace(HOLDOUTS, journeys={**HOLDOUTS.journeys, journey: share})
    behaviour = Behaviour()
    for event in simulate(replace(PLAN, holdouts=holdouts)):
        behaviour.add(event.record)
    return behaviour


def truth(uplift: Uplift, journey: str, step: str, metric: str) -> float:
    """The effect of ``journey`` on ``metric`` over the touchpoints the report compared."""
    (unit,) = [u for u in uplift.steps if (u.journey, u.step) == (journey, step)]
    compared = Group(unit.treated.exposures + unit.held_out.exposures)
    everyone = outcomes(compared, world(journey, 0), DEFAULT_WINDOW)
    nobody = outcomes(compared, world(journey, BASIS_POINTS), DEFAULT_WINDOW)
    return (sum(v[metric] for v in everyone) - sum(v[metric] for v in nobody)) / len(
        compared.exposures
    )


@pytest.mark.parametrize(
    ("journey", "step", "metric", "measurable"),
    [
        ("cross_sell", "offer", REPEAT_PURCHASE.name, True),
        ("need_help", "offer", SETUP.name, True),
        ("need_help", "offer", SUPPORT.name, None),  # real, but at the edge of what shows
    ],
)
def test_a_planted_effect_lies_inside_its_interval(
    uplift: Uplift, journey: str, step: str, metric: str, measurable: bool | None
) -> None:
    row = uplift.row(journey, step, metric)
    assert row is not None
    assert row.comparison is not None
    effect = truth(uplift, journey, step, metric)
    assert effect != 0
    assert row.comparison.absolute.low <= effect <= row.comparison.absolute.high, row
    if measurable is not None:
        assert row.measurable is measurable, row.verdict
    if measurable:
        assert row.verdict.startswith("raises ")
        assert row.verdict.endswith("a gain")


def test_a_journey_the_customers_ignore_shows_no_effect(uplift: Uplift) -> None:
    for journey in ("product_education", "reengagement"):
        rows = [row for row in uplift.rows if row.journey == journey]
        assert rows
        assert [row.verdict for row in rows if row.measurable] == []
        assert any("no measurable effect yet at this sample size" in r.verdict for r in rows)


def test_no_other_outcome_of_the_planted_journeys_reads_as_a_finding(uplift: Uplift) -> None:
    # The extra orders bring revenue too, in whatever currency the customers pay.
    planted = {("cross_sell", REPEAT_PURCHASE.name), ("need_help", SETUP.name),
               ("need_help", SUPPORT.name)}  # fmt: skip
    findings = {
        (row.journey, row.metric.name)
        for row in uplift.rows
        if row.measurable and not (row.journey == "cross_sell" and row.metric.currency)
    }
    assert findings <= planted
    assert ("cross_sell", REPEAT_PURCHASE.name) in findings


def _lives(journey: str, share: int) -> Counter[tuple[object, ...]]:
    plan = replace(PLAN, customers=600, holdouts=Holdouts(journeys={journey: share}))
    return Counter(
        (e.at, e.customer_id, e.record.get("type"), e.record.get("order_id"))
        for e in simulate(plan)
    )


def test_the_simulated_world_does_not_react_to_the_journeys_without_an_effect() -> None:
    for journey in ("product_education", "reengagement"):
        assert _lives(journey, 0) == _lives(journey, BASIS_POINTS)


def test_being_held_out_changes_only_what_the_journey_changes() -> None:
    helped, alone = _lives("need_help", 0), _lives("need_help", BASIS_POINTS)
    changed = (helped - alone) + (alone - helped)
    assert changed
    assert {kind for _, _, kind, _ in changed} == {"SETUP_COMPLETED", "SUPPORT_REQUESTED"}

    offered, not_offered = _lives("cross_sell", 0), _lives("cross_sell", BASIS_POINTS)
    assert not not_offered - offered  # nothing happens only without the offer
    extra = offered - not_offered
    orders = {order for _, _, kind, order in extra if kind == "ORDER_PLACED"}
    assert orders
    assert {order for _, _, _, order in extra} == orders  # only the orders the offer brought


def test_every_rate_is_compared_for_every_held_out_step(uplift: Uplift) -> None:
    steps = {(u.journey, u.step) for u in uplift.steps}
    assert steps == {
        ("product_education", "tips"),
        ("need_help", "offer"),
        ("reengagement", "whole journey"),  # runs start with the push, or the email without it
        ("cross_sell", "offer"),
    }
    for journey, step in steps:
        for metric in RATES:
            assert uplift.row(journey, step, metric.name) is not None
    assert uplift.window == timedelta(days=7)
