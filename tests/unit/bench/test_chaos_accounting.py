"""The fault suite's comparison of a chaos run with its baseline: what it counts as a decision
changed by a fault."""

from datetime import UTC, datetime, timedelta

from bench.chaos import RunResult, compare

END = datetime(2026, 3, 4, tzinfo=UTC)
IN_SPAN = END - timedelta(hours=1)
AFTER = END + timedelta(minutes=5)


def run(name: str) -> RunResult:
    result = RunResult(name)
    result.due = {"tp_sent": IN_SPAN}
    result.dispatched = {"tp_sent": 1}
    result.outcomes = {"tp_sent": ["DELIVERED"], "tp_quiet": ["SUPPRESSED"]}
    result.undispatched_due = {"tp_quiet": IN_SPAN}
    result.journeys = {"tp_sent": "order_confirmation", "tp_quiet": "payment_failed"}
    return result


def test_identical_runs_differ_in_nothing() -> None:
    figures = compare(run("baseline"), run("chaos"), END)
    assert (
        figures["dispatched_only_in_baseline"],
        figures["dispatched_only_in_chaos"],
        figures["dispatched_in_both_with_other_outcomes"],
        figures["undispatched_in_both_with_other_outcomes"],
        figures["undispatched_only_in_baseline_by_journey"],
        figures["undispatched_only_in_chaos_by_journey"],
    ) == (0, 0, 0, 0, {}, {})


def test_a_suppression_the_chaos_run_did_not_make_is_counted() -> None:
    chaos = run("chaos")
    chaos.outcomes.pop("tp_quiet")
    chaos.undispatched_due.pop("tp_quiet")
    figures = compare(run("baseline"), chaos, END)
    assert figures["undispatched_only_in_baseline_by_journey"] == {"payment_failed": 1}
    assert figures["examples_undispatched_only_in_baseline"] == ["tp_quiet"]


def test_a_suppression_the_baseline_did_not_make_is_counted() -> None:
    """The divergence an earlier run found: a payment-failed message sent in the baseline and
    suppressed for want of consent in the chaos run."""
    baseline = run("baseline")
    baseline.outcomes.pop("tp_quiet")
    baseline.undispatched_due.pop("tp_quiet")
    figures = compare(baseline, run("chaos"), END)
    assert figures["undispatched_only_in_chaos_by_journey"] == {"payment_failed": 1}


def test_a_worker_decision_with_another_status_is_counted() -> None:
    chaos = run("chaos")
    chaos.outcomes["tp_quiet"] = ["EXPIRED"]
    figures = compare(run("baseline"), chaos, END)
    assert figures["examples_undispatched_other_outcomes"] == ["tp_quiet"]


def test_decisions_due_after_the_span_are_left_out() -> None:
    chaos = run("chaos")
    chaos.outcomes["tp_late"] = ["SUPPRESSED"]
    chaos.undispatched_due["tp_late"] = AFTER
    figures = compare(run("baseline"), chaos, END)
    assert figures["undispatched_only_in_chaos_by_journey"] == {}
