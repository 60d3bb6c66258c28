"""What a journey changes: each step's touchpoints against its holdout group, outcome by outcome.

:func:`measure` is pure. It takes the outcomes on ``deliveries`` (and the ``dispatch`` records,
which carry ``due_at`` for outcomes written before it was on them) and what customers did, read from
the input topics (:class:`Behaviour`), and returns an :class:`Uplift`.

Who is compared
    Customers, each once per comparison, from their first touchpoint in it (the hash assigns
    customers, not touchpoints; counting a customer's every order would count their next order
    several times and narrow the intervals falsely). *Treated*: the touchpoint was dispatched
    (delivered or not: what the journey decided, not what a provider managed). *Held out*: it
    ended SUPPRESSED with reason ``holdout``. The engine holds a customer out only after every
    other check passed (conditions, consent, quiet hours, caps; a held-out touchpoint counts
    against the caps as a sent one would), so both groups "would have been sent", and only the
    hash decided between them. Touchpoints suppressed for any other reason are in neither group.

    A *step* holdout compares that step's touchpoints. A *journey* holdout compares runs of the
    journey (one trigger, one order) from the first touchpoint that went or was held out: a later
    step's own touchpoints would differ between the groups by what the earlier steps changed (a
    customer the push brought back is no longer "quiet" for the email). The row "all engagement and
    marketing" compares the customers of the global holdout with everyone else, from their first
    engagement or marketing touchpoint. Customers held out globally are in no journey's or step's
    comparison: they also miss every other journey.

What is measured
    For each touchpoint, what its customer did in the ``window`` after its ``due_at`` (when it
    went, or would have gone): another order, its revenue per currency (minor units), a return or
    refund, setup completed, feedback given and its rating, a support request. A touchpoint whose
    window has not ended by the last input event read is left out and counted as *open*.

The statistics are in :mod:`pipeline.analytics.stats`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pipeline.analytics.stats import Comparison, Sample, compare_means, compare_rates, holm
from pipeline.money import format_minor

DEFAULT_WINDOW = timedelta(days=7)
MIN_GROUP = 30  # fewer touchpoints than this in a group: too few to say anything
GLOBAL_JOURNEY = "all engagement and marketing"
GLOBAL_STEP = "global holdout"


class Fact(StrEnum):
    """What a customer did, as far as the uplift report is concerned."""

    ORDER = "ORDER_PLACED"
    REFUND = "ORDER_REFUNDED"
    RETURN = "RETURNED"
    SETUP = "SETUP_COMPLETED"
    FEEDBACK = "FEEDBACK_SUBMITTED"
    SUPPORT = "SUPPORT_REQUESTED"


@dataclass(frozen=True)
class Metric:
    name: str
    label: str  # what the verdict says: "raises <label> by ..."
    better: int  # +1: more is better; -1: less is better
    mean: bool = False  # a mean per touchpoint, not a rate
    currency: str | None = None


_FACTS = frozenset(fact.value for fact in Fact)

REPEAT_PURCHASE = Metric("repeat_purchase", "repeat purchases", +1)
RETURNS = Metric("returns", "returns and refunds", -1)
SETUP = Metric("setup_completed", "setups completed", +1)
FEEDBACK = Metric("feedback_submitted", "feedback given", +1)
SUPPORT = Metric("support_requested", "support requests", -1)
RATING = Metric("rating", "the rating given (of those who gave feedback)", +1, mean=True)
RATES = (REPEAT_PURCHASE, RETURNS, SETUP, FEEDBACK, SUPPORT)


def revenue(currency: str) -> Metric:
    return Metric(f"revenue_{currency}", f"{currency} revenue", +1, mean=True, currency=currency)


class Behaviour:
    """What customers did, from the input topics' records: only what outcomes need, each once."""

    def __init__(self) -> None:
        self._facts: dict[str, list[tuple[datetime, Fact, int, str]]] = defaultdict(list)
        self._seen: set[str] = set()
        self._sorted = True
        self.observed_until: datetime | None = None

    def add(self, record: Mapping[str, Any]) -> None:
        """One decoded input record (of any input topic; only what outcomes need is kept)."""
        at = record.get("occurred_at")
        if not isinstance(at, datetime):
            return
        if self.observed_until is None or at > self.observed_until:
            self.observed_until = at
        kind = record.get("type")
        if kind not in _FACTS or record["event_id"] in self._seen:
            return
        self._seen.add(record["event_id"])
        fact = Fact(kind)
        amount = 0
        if fact is Fact.ORDER:
            amount = int(record.get("total_minor") or 0)
        elif fact is Fact.FEEDBACK:
            amount = int(record.get("rating") or 0)
        self._facts[record["customer_id"]].append((at, fact, amount, record.get("currency") or ""))
        self._sorted = False

    def between(
        self, customer: str, after: datetime, until: datetime
    ) -> list[tuple[datetime, Fact, int, str]]:
        """The customer's facts with ``after < time <= until``, in time order."""
        if not self._sorted:
            for facts in self._facts.values():
                facts.sort(key=lambda f: f[0])
            self._sorted = True
        facts = self._facts.get(customer, [])
        start = bisect_right(facts, after, key=lambda f: f[0])
        end = bisect_right(facts, until, key=lambda f: f[0])
        return facts[start:end]


@dataclass(frozen=True)
class Group:
    """One step's touchpoints in one group, each as (customer, due_at)."""

    exposures: tuple[tuple[str, datetime], ...] = ()
    open: int = 0  # touchpoints whose window has not ended yet: not measured


@dataclass(frozen=True)
class UpliftRow:
    journey: str
    step: str
    metric: Metric
    treated: int  # touchpoints measured (for a rating: those who rated)
    held_out: int
    comparison: Comparison | None  # None: a group too small or empty
    adjusted_p: float | None = None  # Holm, across the report
    verdict: str = ""

    @property
    def measurable(self) -> bool:
        return self.adjusted_p is not None and self.adjusted_p < 0.05


@dataclass(frozen=True)
class StepGroups:
    journey: str
    step: str
    treated: Group
    held_out: Group


@dataclass(frozen=True)
class Uplift:
    window: timedelta
    observed_until: datetime | None
    steps: tuple[StepGroups, ...] = ()
    rows: tuple[UpliftRow, ...] = field(default_factory=tuple)

    def row(self, journey: str, step: str, metric: str) -> UpliftRow | None:
        for row in self.rows:
            if (row.journey, row.step, row.metric.name) == (journey, step, metric):
                return row
        return None


def headlines(uplift: Uplift) -> list[str]:
    """A line per step with a holdout: its measurable effects, or that there are none yet."""
    lines = []
    for unit in uplift.steps:
        found = [
            row.verdict
            for row in uplift.rows
            if (row.journey, row.step) == (unit.journey, unit.step) and row.measurable
        ]
        sizes = f"{len(unit.treated.exposures)} treated, {len(unit.held_out.exposures)} held out"
        still_open = unit.treated.open + unit.held_out.open
        if still_open:
            sizes += f", {still_open} still in their window"
        if found:
            said = "; ".join(found)
        elif min(len(unit.treated.exposures), len(unit.held_out.exposures)) < MIN_GROUP:
            said = f"too few to tell yet (at least {MIN_GROUP} a group)"
        else:
            said = "no measurable effect yet at this sample size"
        lines.append(f"{unit.journey}.{unit.step} ({sizes}): {said}")
    return lines


@dataclass(frozen=True)
class _Touch:
    """One touchpoint as the comparison sees it."""

    customer: str
    journey: str
    step: str
    priority: str
    due: datetime
    instance: tuple[str, str, str, datetime]  # customer, journey, order, trigger: one journey run
    treated: bool  # dispatched
    holdout: str  # "" (not held out), "journey", "step" or "global"


def measure(
    outcomes: Iterable[Mapping[str, Any]],
    behaviour: Behaviour,
    dispatched: Iterable[Mapping[str, Any]] = (),
    *,
    window: timedelta = DEFAULT_WINDOW,
) -> Uplift:
    """Compare treated and held-out customers of every journey, step or global holdout."""
    if window <= timedelta(0):
        raise ValueError(f"the window must be longer than 0, not {window}")
    touches = _touches(outcomes, dispatched)
    until = behaviour.observed_until
    units: dict[tuple[str, str], tuple[dict[str, _Touch], dict[str, _Touch]]] = {}

    def first(side: dict[str, _Touch], touch: _Touch) -> None:
        known = side.get(touch.customer)
        if known is None or touch.due < known.due:
            side[touch.customer] = touch  # each customer counts once: from their first

    def unit(journey: str, step: str) -> tuple[dict[str, _Touch], dict[str, _Touch]]:
        return units.setdefault((journey, step), ({}, {}))

    decided = [t for t in touches if t.treated or t.holdout]
    # A step holdout: that step's touchpoints, treated or held out of the step.
    held_steps = {(t.journey, t.step) for t in decided if t.holdout == "step"}
    for touch in decided:
        if (touch.journey, touch.step) in held_steps and touch.holdout in ("", "step"):
            first(unit(touch.journey, touch.step)[touch.holdout == "step"], touch)
    # A journey holdout: each run of the journey from its first touchpoint that went or was held
    # out. Later steps could differ between the groups by what the earlier ones changed (a
    # customer back in the app is no longer "quiet"), so the run is measured from its start.
    held_journeys = {t.journey for t in decided if t.holdout == "journey"}
    runs: dict[tuple[str, str, str, datetime], _Touch] = {}
    for touch in decided:
        if touch.journey in held_journeys and touch.holdout in ("", "journey"):
            known = runs.get(touch.instance)
            if known is None or touch.due < known.due:
                runs[touch.instance] = touch
    for journey in sorted(held_journeys):
        started = [t for t in runs.values() if t.journey == journey]
        names = {t.step for t in started}
        label = names.pop() if len(names) == 1 else "whole journey"
        sides = unit(journey, label)
        for touch in started:
            first(sides[touch.holdout == "journey"], touch)
    # The global holdout: customers held out of everything that keeps in touch, against everyone
    # else, each from their first such touchpoint that went or was held out.
    if any(t.holdout == "global" for t in decided):
        sides = unit(GLOBAL_JOURNEY, GLOBAL_STEP)
        for touch in decided:
            if touch.priority != "TRANSACTIONAL":
                first(sides[touch.holdout == "global"], touch)
    for treated, held in units.values():
        for customer in set(treated) & set(held):  # the key changed during the records read
            del treated[customer], held[customer]

    def group(side: dict[str, _Touch]) -> Group:
        measured = sorted((t.customer, t.due) for t in side.values() if _closed(t, until, window))
        return Group(tuple(measured), len(side) - len(measured))

    step_groups = tuple(
        StepGroups(key[0], key[1], group(units[key][0]), group(units[key][1]))
        for key in sorted(units, key=_step_order)
    )
    rows = [row for unit in step_groups for row in _rows(unit, behaviour, window)]
    return Uplift(window, until, step_groups, _judged(rows))


def _closed(touch: _Touch, until: datetime | None, window: timedelta) -> bool:
    return until is not None and touch.due + window <= until


def _touches(
    outcomes: Iterable[Mapping[str, Any]], dispatched: Iterable[Mapping[str, Any]]
) -> list[_Touch]:
    """Every touchpoint once (the first record wins), with how it ended for the comparison."""
    found: dict[str, _Touch] = {}
    for command in dispatched:
        if command["touchpoint_id"] not in found:
            found[command["touchpoint_id"]] = _touch(command, command["due_at"], True, "")
    decided: set[str] = set()
    for outcome in outcomes:
        touchpoint = outcome["touchpoint_id"]
        if touchpoint in decided:
            continue  # a redelivered outcome: the first one counts
        decided.add(touchpoint)
        known = found.get(touchpoint)
        due = outcome.get("due_at") or (known.due if known else outcome["occurred_at"])
        treated = known is not None or outcome.get("dispatched_at") is not None
        holdout = ""
        if not treated and outcome["status"] == "SUPPRESSED" and outcome.get("reason") == "holdout":
            detail = outcome.get("detail") or ""
            holdout = next((k for k in ("global", "step", "journey") if detail.startswith(k)), "")
            holdout = holdout or "journey"
        found[touchpoint] = _touch(outcome, due, treated, holdout)
    return list(found.values())


def _touch(record: Mapping[str, Any], due: datetime, treated: bool, holdout: str) -> _Touch:
    customer = record["customer_id"]
    instance = (customer, record["journey"], record.get("order_id") or "",
                record.get("trigger_occurred_at") or due)  # fmt: skip
    return _Touch(customer, record["journey"], record["step"], record["priority"], due, instance,
                  treated, holdout)  # fmt: skip


def _step_order(key: tuple[str, str]) -> tuple[bool, str, str]:
    return (key[0] == GLOBAL_JOURNEY, key[0], key[1])


def _rows(unit: StepGroups, behaviour: Behaviour, window: timedelta) -> list[UpliftRow]:
    """One row per outcome: rates, the rating, revenue in each currency ordered in."""
    sides = [
        outcomes(unit.treated, behaviour, window),
        outcomes(unit.held_out, behaviour, window),
    ]
    rows = []
    sizes = (len(unit.treated.exposures), len(unit.held_out.exposures))
    for metric in RATES:
        hits = [sum(1 for values in side if values[metric.name]) for side in sides]
        comparison = None
        if min(sizes) >= MIN_GROUP:
            comparison = compare_rates(hits[0], sizes[0], hits[1], sizes[1])
        rows.append(UpliftRow(unit.journey, unit.step, metric, sizes[0], sizes[1], comparison))
    ratings = [[v["rating"] for v in side if v["rating"]] for side in sides]
    rows.append(_means(unit, RATING, ratings))
    currencies = sorted({c for side in sides for values in side for c in values["revenue"]})
    for currency in currencies:
        amounts = [[float(v["revenue"].get(currency, 0)) for v in side] for side in sides]
        rows.append(_means(unit, revenue(currency), amounts))
    return rows


def _means(unit: StepGroups, metric: Metric, values: list[list[float]]) -> UpliftRow:
    treated, held = Sample.of(values[0]), Sample.of(values[1])
    comparison = None
    if min(treated.n, held.n) >= MIN_GROUP:
        comparison = compare_means(treated, held)
    return UpliftRow(unit.journey, unit.step, metric, treated.n, held.n, comparison)


def outcomes(group: Group, behaviour: Behaviour, window: timedelta) -> list[dict[str, Any]]:
    """What the customer of each touchpoint of ``group`` did in its window, by metric name (and
    ``revenue``: minor units per currency)."""
    found = []
    for customer, due in group.exposures:
        values: dict[str, Any] = {metric.name: False for metric in RATES}
        values["rating"] = 0
        spent: dict[str, int] = defaultdict(int)
        for _, fact, amount, currency in behaviour.between(customer, due, due + window):
            if fact is Fact.ORDER:
                values[REPEAT_PURCHASE.name] = True
                spent[currency] += amount
            elif fact in (Fact.RETURN, Fact.REFUND):
                values[RETURNS.name] = True
            elif fact is Fact.SETUP:
                values[SETUP.name] = True
            elif fact is Fact.SUPPORT:
                values[SUPPORT.name] = True
            elif fact is Fact.FEEDBACK:
                values[FEEDBACK.name] = True
                values["rating"] = values["rating"] or amount  # the first rating given
        values["revenue"] = dict(spent)
        found.append(values)
    return found


def _judged(rows: list[UpliftRow]) -> tuple[UpliftRow, ...]:
    """Holm-adjust across every comparison made, then say in words what each one shows."""
    compared = [i for i, row in enumerate(rows) if row.comparison is not None]
    adjusted = holm([rows[i].comparison.p_value for i in compared])  # type: ignore[union-attr]
    out = list(rows)
    for index, p in zip(compared, adjusted, strict=True):
        out[index] = _with_verdict(rows[index], p)
    for index, row in enumerate(out):
        if row.comparison is None:
            out[index] = _with_verdict(row, None)
    return tuple(out)


def _with_verdict(row: UpliftRow, adjusted: float | None) -> UpliftRow:
    comparison = row.comparison
    if row.held_out == 0:
        verdict = "nobody held out yet"
    elif row.treated == 0:
        verdict = "nothing sent yet"
    elif comparison is None:
        verdict = (
            f"too few to tell yet: {row.treated} treated, {row.held_out} held out "
            f"(at least {MIN_GROUP} each)"
        )
    else:
        assert adjusted is not None
        effect = comparison.absolute
        if adjusted < 0.05:
            direction = "raises" if effect.estimate > 0 else "lowers"
            good = (effect.estimate > 0) == (row.metric.better > 0)
            size = format_effect(row.metric, abs(effect.estimate))
            verdict = (
                f"{direction} {row.metric.label} by {size} (95% CI "
                f"{format_effect(row.metric, effect.low, sign=True)} to "
                f"{format_effect(row.metric, effect.high, sign=True)}): "
                + ("a gain" if good else "a loss")
            )
        else:
            verdict = (
                "no measurable effect yet at this sample size (it would take about "
                f"{format_effect(row.metric, comparison.detectable)} either way to show)"
            )
    return UpliftRow(
        row.journey,
        row.step,
        row.metric,
        row.treated,
        row.held_out,
        comparison,
        adjusted,
        verdict,
    )


def format_effect(metric: Metric, value: float, *, sign: bool = False) -> str:
    """Points for rates (``+4.2 pts``), the metric's own unit for means."""
    prefix = "+" if sign and value > 0 else ""
    if not metric.mean:
        return f"{prefix}{value * 100:.1f} pts"
    if metric.currency:
        return format_minor(value, metric.currency, sign=sign)
    return f"{prefix}{value:.2f}"
