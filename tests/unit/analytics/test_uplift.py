"""Who is compared with whom, what counts as an outcome inside a touchpoint's window, and what the
verdicts say."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.analytics.report import UPLIFT_CHART, summarize, write_report
from pipeline.analytics.uplift import (
    GLOBAL_JOURNEY,
    MIN_GROUP,
    REPEAT_PURCHASE,
    SUPPORT,
    Behaviour,
    headlines,
    measure,
)
from tests.samples import T0, app_usage, delivery_outcome, purchase, shipment, touchpoint_command

DAY = timedelta(days=1)
_ids = itertools.count()


def sent(customer: str, journey: str = "cross_sell", due_day: float = 0, **more: Any) -> dict:
    due = T0 + due_day * DAY
    touchpoint = f"tp-{next(_ids)}"
    fields = {
        "event_id": touchpoint,
        "touchpoint_id": touchpoint,
        "customer_id": customer,
        "journey": journey,
        "step": "offer",
        "priority": "MARKETING",
        "occurred_at": due,
        "dispatched_at": due,
        "accepted_at": due,
        "due_at": due,
    }
    return delivery_outcome(**{**fields, **more})


def held(customer: str, journey: str = "cross_sell", due_day: float = 0, **more: Any) -> dict:
    due = T0 + due_day * DAY
    touchpoint = f"tp-{next(_ids)}"
    fields = {
        "event_id": touchpoint,
        "touchpoint_id": touchpoint,
        "customer_id": customer,
        "journey": journey,
        "step": "offer",
        "priority": "MARKETING",
        "occurred_at": due,
        "status": "SUPPRESSED",
        "reason": "holdout",
        "detail": "journey holdout 10%",
        "channel": None,
        "attempts": 0,
        "provider_message_id": None,
        "dispatched_at": None,
        "accepted_at": None,
        "due_at": due,
    }
    fields.update(more)
    return delivery_outcome(**fields)


def ordered(customer: str, day: float, total: int = 5000, currency: str = "EUR") -> dict:
    return purchase(
        event_id=f"ev-{next(_ids)}",
        customer_id=customer,
        occurred_at=T0 + day * DAY,
        total_minor=total,
        currency=currency,
    )


def behaviour(*records: dict, until_day: float = 30) -> Behaviour:
    seen = Behaviour()
    for record in records:
        seen.add(record)
    seen.add(app_usage(event_id="the-end", type="APP_OPENED", occurred_at=T0 + until_day * DAY))
    return seen


def test_an_order_counts_only_inside_the_window_after_due() -> None:
    outcomes = [sent("a"), sent("b"), sent("c"), held("d")]
    seen = behaviour(
        ordered("a", 0),  # at due: not after it
        ordered("b", 3),
        ordered("c", 7.5),  # after the 7-day window
        ordered("d", 6.9),
    )
    uplift = measure(outcomes, seen)
    (unit,) = uplift.steps
    assert (len(unit.treated.exposures), len(unit.held_out.exposures)) == (3, 1)
    row = uplift.row("cross_sell", "offer", REPEAT_PURCHASE.name)
    assert row is not None
    assert row.comparison is None  # too few to compare
    assert row.verdict == (
        f"too few to tell yet: 3 treated, 1 held out (at least {MIN_GROUP} each)"
    )


def test_other_suppressions_and_repeated_outcomes_are_in_neither_group() -> None:
    first = held("x")
    outcomes = [
        first,
        {**first, "status": "DELIVERED"},  # redelivered after a crash: the first one counts
        held("y", reason="frequency_cap"),
        held("z", reason="no_consent"),
        sent("w"),
    ]
    (unit,) = measure(outcomes, behaviour()).steps
    assert [c for c, _ in unit.held_out.exposures] == ["x"]
    assert [c for c, _ in unit.treated.exposures] == ["w"]


def test_a_dispatch_without_an_outcome_is_treated_and_steps_without_a_holdout_are_left_out() -> (
    None
):
    dispatch = touchpoint_command(
        touchpoint_id="tp-in-flight", customer_id="v", journey="cross_sell", step="offer"
    )
    outcomes = [held("u"), sent("t", journey="order_confirmation")]
    uplift = measure(outcomes, behaviour(), [dispatch])
    assert [(u.journey, u.step) for u in uplift.steps] == [("cross_sell", "offer")]
    assert [c for c, _ in uplift.steps[0].treated.exposures] == ["v"]


def test_each_customer_counts_once_from_their_first_touchpoint() -> None:
    outcomes = [sent("a", due_day=5), sent("a", due_day=1), held("b", due_day=2), held("b")]
    (unit,) = measure(outcomes, behaviour()).steps
    assert unit.treated.exposures == (("a", T0 + DAY),)
    assert unit.held_out.exposures == (("b", T0),)


def test_a_journey_holdout_is_measured_from_the_start_of_each_run() -> None:
    run = {"order_id": "o1", "trigger_occurred_at": T0 - DAY, "journey": "reengagement",
           "priority": "ENGAGEMENT"}  # fmt: skip
    outcomes = [
        {**sent("a", due_day=0, **run), "step": "push"},
        {**sent("a", due_day=7, **run), "step": "email"},
        {**held("b", due_day=0, **run), "step": "push"},
        {**held("b", due_day=7, **run), "step": "email"},
        {**held("c", due_day=7, **run), "step": "email"},  # its push was capped: starts here
    ]
    uplift = measure(outcomes, behaviour())
    (unit,) = uplift.steps
    assert (unit.journey, unit.step) == ("reengagement", "whole journey")
    assert unit.treated.exposures == (("a", T0),)
    assert unit.held_out.exposures == (("b", T0), ("c", T0 + 7 * DAY))


def test_a_step_holdout_compares_that_step() -> None:
    outcomes = [sent("a"), held("b", detail="step holdout 20%"), held("c", journey="need_help")]
    steps = {(u.journey, u.step): u for u in measure(outcomes, behaviour()).steps}
    assert [c for c, _ in steps[("cross_sell", "offer")].treated.exposures] == ["a"]
    assert [c for c, _ in steps[("cross_sell", "offer")].held_out.exposures] == ["b"]
    assert [c for c, _ in steps[("need_help", "offer")].held_out.exposures] == ["c"]


def test_touchpoints_whose_window_is_still_open_are_counted_not_measured() -> None:
    outcomes = [sent("a", due_day=1), sent("b", due_day=25), held("c", due_day=28)]
    (unit,) = measure(outcomes, behaviour(until_day=30)).steps
    assert (len(unit.treated.exposures), unit.treated.open, unit.held_out.open) == (1, 1, 1)


def _experiment(n: int = 400) -> list[dict]:
    """``n`` customers treated (t0, t1, ...) and ``n`` held out (h0, h1, ...)."""
    records = []
    for i in range(n):
        records.append(sent(f"t{i}"))
        records.append(held(f"h{i}"))
    return records


def test_a_real_difference_reads_as_a_finding_and_a_small_one_does_not() -> None:
    outcomes = _experiment()
    orders = [ordered(f"t{i}", 2) for i in range(120)] + [ordered(f"h{i}", 2) for i in range(40)]
    support = [
        app_usage(event_id=f"s{i}", customer_id=f"t{i}", type="SUPPORT_REQUESTED",
                  occurred_at=T0 + 2 * DAY)
        for i in range(20)
    ] + [
        app_usage(event_id=f"s-h{i}", customer_id=f"h{i}", type="SUPPORT_REQUESTED",
                  occurred_at=T0 + 2 * DAY)
        for i in range(24)
    ]  # fmt: skip
    uplift = measure(outcomes, behaviour(*orders, *support))
    repeat = uplift.row("cross_sell", "offer", REPEAT_PURCHASE.name)
    assert repeat is not None
    assert repeat.comparison is not None
    assert repeat.comparison.treated == pytest.approx(0.3)
    assert repeat.comparison.held_out == pytest.approx(0.1)
    assert repeat.measurable
    assert repeat.verdict.startswith("raises repeat purchases by 20.0 pts (95% CI +")
    assert repeat.verdict.endswith("a gain")
    revenue = uplift.row("cross_sell", "offer", "revenue_EUR")
    assert revenue is not None
    assert revenue.comparison is not None
    assert revenue.comparison.absolute.estimate == pytest.approx(0.2 * 5000)
    quiet = uplift.row("cross_sell", "offer", SUPPORT.name)
    assert quiet is not None
    assert not quiet.measurable
    assert quiet.verdict.startswith("no measurable effect yet at this sample size")
    assert headlines(uplift)[0].startswith("cross_sell.offer (400 treated, 400 held out): raises")


def test_the_global_holdout_is_compared_with_every_other_customer() -> None:
    outcomes = [
        sent("a", journey="cross_sell"),
        sent("b", journey="need_help", priority="ENGAGEMENT"),
        sent("c", journey="order_confirmation", priority="TRANSACTIONAL"),
        held("d", journey="need_help", priority="ENGAGEMENT", detail="global holdout 5%"),
        held("e", journey="cross_sell", detail="journey holdout 10%"),
    ]
    uplift = measure(outcomes, behaviour())
    (everything,) = [u for u in uplift.steps if u.journey == GLOBAL_JOURNEY]
    # Not globally held out: in the global comparison's treated group, journey holdout or not.
    assert sorted(c for c, _ in everything.treated.exposures) == ["a", "b", "e"]
    assert [c for c, _ in everything.held_out.exposures] == ["d"]
    # ... and the globally held out are in no journey's comparison.
    (need_help,) = [u for u in uplift.steps if u.journey == "need_help"] or [None]
    assert need_help is None


def test_the_report_gets_an_uplift_section_and_chart(tmp_path: Path) -> None:
    outcomes = _experiment(60)
    orders = [ordered(f"t{i}", 2) for i in range(30)]
    uplift = measure(outcomes, behaviour(*orders))
    files = write_report(summarize(outcomes), tmp_path, uplift=uplift)
    assert tmp_path / UPLIFT_CHART in files.charts
    markdown = files.markdown.read_text()
    assert "## Holdout groups" in markdown
    assert "## Uplift per journey step" in markdown
    assert "raises repeat purchases by 50.0 pts" in markdown
    assert "Holm" in markdown
    assert "uplift-per-journey.png" in files.html.read_text()
    # Without uplift data, no section and no chart.
    plain = write_report(summarize(outcomes), tmp_path / "plain")
    assert UPLIFT_CHART not in [p.name for p in plain.charts]
    assert "Uplift" not in plain.markdown.read_text()


def test_a_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window"):
        measure([], Behaviour(), window=timedelta(0))


def test_inputs_read_twice_count_once() -> None:
    order = ordered("a", 1)
    seen = behaviour(order, order, shipment(event_id="r1", customer_id="a", type="RETURNED",
                                            occurred_at=T0 + DAY))  # fmt: skip
    assert len(seen.between("a", T0, T0 + 2 * DAY)) == 2
