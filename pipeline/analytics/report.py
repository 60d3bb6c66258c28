"""The deliveries report: pure aggregation of outcomes and dispatches, written as files.

:class:`Counting` counts decoded ``DeliveryOutcome`` records (and, optionally, the
``TouchpointCommand`` records of ``dispatch``) as they come, each touchpoint once, and gives a
:class:`ReportData`; :func:`summarize` does it for records at hand. Neither does I/O or reads a
clock, so the ``aftercare run`` summary, its live view and tests can use them on any records.
:func:`write_report` writes that data as Markdown, a self-contained HTML page and PNG charts; the
same data always gives the same files (no generation time is written, charts carry no version
metadata).

How the numbers are counted:

- Outcomes and dispatches are de-duplicated by ``touchpoint_id``; the first record wins (read in
  offset order, a touchpoint's records all live in one partition, keyed by customer).
- *In flight*: dispatched, but no outcome among the records given.
- *Latency*: ``accepted_at - dispatched_at`` of DELIVERED outcomes, per channel, in pipeline-clock
  seconds; :func:`write_report` divides by the clock factor to show real seconds.
- *Messages per customer per week*: DELIVERED outcomes per customer per ISO week (Monday to Sunday,
  UTC) of ``occurred_at``; only customer-weeks with at least one message count.
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.analytics.uplift import Uplift, UpliftRow, format_effect
from pipeline.money import format_minor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STATUSES = ("DELIVERED", "FAILED", "SUPPRESSED", "EXPIRED")
QUANTILES = (0.5, 0.95, 0.99)

MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
OUTCOMES_CHART = "outcomes-per-journey.png"
LATENCY_CHART = "latency-per-channel.png"
WEEKLY_CHART = "messages-per-customer-week.png"
UPLIFT_CHART = "uplift-per-journey.png"


@dataclass(frozen=True)
class StepRow:
    """Counts of one journey step (or of everything, in :attr:`ReportData.totals`)."""

    journey: str
    step: str
    dispatched: int = 0
    delivered: int = 0
    failed: int = 0
    suppressed: int = 0
    expired: int = 0
    in_flight: int = 0
    suppressed_by_reason: Mapping[str, int] = field(default_factory=dict)
    failed_by_reason: Mapping[str, int] = field(default_factory=dict)
    expired_by_reason: Mapping[str, int] = field(default_factory=dict)

    @property
    def ended(self) -> int:
        """Touchpoints with an outcome, whatever it was."""
        return self.delivered + self.failed + self.suppressed + self.expired


@dataclass(frozen=True)
class Latency:
    """Dispatch to provider acceptance on one channel, in pipeline-clock seconds."""

    channel: str
    count: int
    p50: float
    p95: float
    p99: float


@dataclass(frozen=True)
class WeeklyLoad:
    """Delivered messages per customer per ISO week: is anybody flooded?"""

    weeks: tuple[str, ...] = ()  # ISO weeks with a delivered message, like "2026-W10"
    customers: int = 0
    customer_weeks: int = 0  # (customer, week) pairs with at least one delivered message
    mean: float = 0.0
    p99: float = 0.0
    max: int = 0
    max_engagement: int = 0  # the most non-transactional messages one customer got in one week
    histogram: Mapping[int, int] = field(default_factory=dict)  # messages -> customer-weeks


@dataclass(frozen=True)
class ReportData:
    steps: tuple[StepRow, ...]  # sorted by journey, then step
    totals: StepRow
    delivered_by_channel: Mapping[str, int]
    latency: tuple[Latency, ...]  # sorted by channel
    weekly: WeeklyLoad
    duplicate_outcomes: int  # outcome records dropped: same touchpoint id as an earlier one
    duplicate_dispatches: int
    first_at: datetime | None  # the earliest and latest occurred_at of the records counted
    last_at: datetime | None
    skipped: tuple[str, ...] = ()  # records that could not be decoded: "topic/partition/offset"
    # The same as if every touchpoint a digest folded in (SUPPRESSED ``digest``) had gone alone.
    weekly_without_digests: WeeklyLoad = field(default_factory=WeeklyLoad)

    def step(self, journey: str, step: str) -> StepRow:
        """The row of one journey step (all zeros if it has no records)."""
        for row in self.steps:
            if (row.journey, row.step) == (journey, step):
                return row
        return StepRow(journey, step)


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    charts: list[Path]


# -- aggregation -------------------------------------------------------------------------------


class Counting:
    """Touchpoints counted as their records come, each once: the one place outcomes and
    dispatches are counted, for the report (:func:`summarize`) and for a live view of a run
    (the demo's), which reads :meth:`by_journey` while records still arrive.

    The first record of a touchpoint id wins; a later one is a duplicate (at-least-once delivery
    writes some twice), and one that says another status is also counted as a conflict.
    """

    def __init__(self) -> None:
        self.outcomes: dict[str, Mapping[str, Any]] = {}  # the first, by touchpoint id
        self.dispatches: dict[str, Mapping[str, Any]] = {}
        self.duplicate_outcomes = 0
        self.duplicate_dispatches = 0
        self.conflicting_outcomes = 0  # a repeated outcome with another status (never, we hope)
        self._counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self._reasons: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
        self._by_channel: Counter[str] = Counter()
        self._waits: dict[str, list[float]] = defaultdict(list)

    def add_outcome(self, outcome: Mapping[str, Any]) -> None:
        touchpoint = outcome["touchpoint_id"]
        first = self.outcomes.get(touchpoint)
        if first is not None:
            self.duplicate_outcomes += 1
            if first["status"] != outcome["status"]:
                self.conflicting_outcomes += 1
            return
        status = outcome["status"]
        if status not in STATUSES:
            raise ValueError(
                f"touchpoint {touchpoint} has status {status!r}, not one of {', '.join(STATUSES)}"
            )
        self.outcomes[touchpoint] = outcome
        key = (outcome["journey"], outcome["step"])
        self._counts[key][status] += 1
        if status in ("SUPPRESSED", "FAILED", "EXPIRED"):
            self._reasons[(*key, status)][outcome.get("reason") or "unknown"] += 1
        elif outcome.get("channel"):
            channel = str(outcome["channel"])
            self._by_channel[channel] += 1
            accepted, sent = outcome.get("accepted_at"), outcome.get("dispatched_at")
            if accepted is not None and sent is not None:
                self._waits[channel].append(max((accepted - sent).total_seconds(), 0.0))

    def add_dispatch(self, command: Mapping[str, Any]) -> None:
        touchpoint = command["touchpoint_id"]
        if touchpoint in self.dispatches:
            self.duplicate_dispatches += 1
            return
        self.dispatches[touchpoint] = command
        self._counts[(command["journey"], command["step"])]["dispatched"] += 1

    @property
    def in_flight(self) -> int:
        """Dispatched touchpoints without an outcome yet."""
        return sum(1 for touchpoint in self.dispatches if touchpoint not in self.outcomes)

    def steps(self) -> tuple[StepRow, ...]:
        """One row per journey step, sorted by journey, then step."""
        in_flight: Counter[tuple[str, str]] = Counter(
            (command["journey"], command["step"])
            for touchpoint, command in self.dispatches.items()
            if touchpoint not in self.outcomes
        )
        return tuple(
            _row(key, self._counts[key], in_flight[key], self._reasons)
            for key in sorted(self._counts)
        )

    def total(self) -> StepRow:
        """Every step's row added up."""
        return _total(self.steps())

    def by_journey(self) -> dict[str, StepRow]:
        """The steps' rows added up per journey."""
        rows: dict[str, list[StepRow]] = defaultdict(list)
        for row in self.steps():
            rows[row.journey].append(row)
        return {name: _total(steps, name) for name, steps in sorted(rows.items())}

    def data(self, skipped: Iterable[str] = ()) -> ReportData:
        """Everything counted so far, as the report shows it."""
        steps = self.steps()
        outcomes, dispatches = self.outcomes.values(), self.dispatches.values()
        moments = [r["occurred_at"] for r in (*outcomes, *dispatches)]
        return ReportData(
            steps=steps,
            totals=_total(steps),
            delivered_by_channel=dict(sorted(self._by_channel.items())),
            latency=tuple(
                Latency(channel, len(values), *(quantile(sorted(values), q) for q in QUANTILES))
                for channel, values in sorted(self._waits.items())
            ),
            weekly=_weekly(outcomes),
            weekly_without_digests=_weekly(outcomes, count_digested=True),
            duplicate_outcomes=self.duplicate_outcomes,
            duplicate_dispatches=self.duplicate_dispatches,
            first_at=min(moments, default=None),
            last_at=max(moments, default=None),
            skipped=tuple(skipped),
        )


def summarize(
    outcomes: Iterable[Mapping[str, Any]],
    dispatched: Iterable[Mapping[str, Any]] = (),
    *,
    skipped: Iterable[str] = (),
) -> ReportData:
    """Aggregate decoded outcome records (and the dispatch records, for *in flight*).

    ``skipped`` lists where undecodable records were found, to be shown in the report.
    """
    counting = Counting()
    for outcome in outcomes:
        counting.add_outcome(outcome)
    for command in dispatched:
        counting.add_dispatch(command)
    return counting.data(skipped)


def quantile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolating linearly between ranks (0 if empty)."""
    if not ordered:
        return 0.0
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def _row(
    key: tuple[str, str],
    counts: Counter[str],
    in_flight: int,
    reasons: Mapping[tuple[str, str, str], Counter[str]],
) -> StepRow:
    def why(status: str) -> dict[str, int]:
        return dict(sorted(reasons.get((*key, status), Counter()).items()))

    return StepRow(
        journey=key[0],
        step=key[1],
        dispatched=counts["dispatched"],
        delivered=counts["DELIVERED"],
        failed=counts["FAILED"],
        suppressed=counts["SUPPRESSED"],
        expired=counts["EXPIRED"],
        in_flight=in_flight,
        suppressed_by_reason=why("SUPPRESSED"),
        failed_by_reason=why("FAILED"),
        expired_by_reason=why("EXPIRED"),
    )


def _total(steps: Sequence[StepRow], journey: str = "all journeys") -> StepRow:
    suppressed: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    expired: Counter[str] = Counter()
    for row in steps:
        suppressed.update(row.suppressed_by_reason)
        failed.update(row.failed_by_reason)
        expired.update(row.expired_by_reason)
    return StepRow(
        journey=journey,
        step="",
        dispatched=sum(row.dispatched for row in steps),
        delivered=sum(row.delivered for row in steps),
        failed=sum(row.failed for row in steps),
        suppressed=sum(row.suppressed for row in steps),
        expired=sum(row.expired for row in steps),
        in_flight=sum(row.in_flight for row in steps),
        suppressed_by_reason=dict(sorted(suppressed.items())),
        failed_by_reason=dict(sorted(failed.items())),
        expired_by_reason=dict(sorted(expired.items())),
    )


def iso_week(moment: datetime) -> str:
    """The ISO week of ``moment`` (in its own time zone; records are UTC), like ``2026-W10``."""
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def _weekly(outcomes: Iterable[Mapping[str, Any]], *, count_digested: bool = False) -> WeeklyLoad:
    per_week: Counter[tuple[str, str]] = Counter()
    engagement: Counter[tuple[str, str]] = Counter()
    for outcome in outcomes:
        digested = outcome["status"] == "SUPPRESSED" and outcome.get("reason") == "digest"
        if outcome["status"] != "DELIVERED" and not (count_digested and digested):
            continue
        key = (outcome["customer_id"], iso_week(outcome["occurred_at"]))
        per_week[key] += 1
        if outcome.get("priority") != "TRANSACTIONAL":
            engagement[key] += 1
    if not per_week:
        return WeeklyLoad()
    values = sorted(per_week.values())
    spread = Counter(values)
    return WeeklyLoad(
        weeks=tuple(sorted({week for _, week in per_week})),
        customers=len({customer for customer, _ in per_week}),
        customer_weeks=len(values),
        mean=sum(values) / len(values),
        p99=quantile(values, 0.99),
        max=values[-1],
        max_engagement=max(engagement.values(), default=0),
        histogram={n: spread.get(n, 0) for n in range(1, values[-1] + 1)},
    )


# -- writing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""
    numeric_from: int = 1  # columns from this index on are right-aligned


def write_report(
    data: ReportData,
    out_dir: Path,
    *,
    clock_factor: float = 1.0,
    title: str = "Aftercare deliveries",
    uplift: Uplift | None = None,
) -> ReportFiles:
    """Write ``report.md``, ``report.html`` and the PNG charts into ``out_dir`` (created); with
    ``uplift``, its tables and chart too."""
    if not clock_factor > 0:
        raise ValueError(f"clock_factor must be positive, got {clock_factor}")
    out_dir.mkdir(parents=True, exist_ok=True)
    intro = _intro(data, clock_factor)
    tables = _tables(data, clock_factor)
    captions = {
        OUTCOMES_CHART: "Outcomes per journey",
        LATENCY_CHART: "Latency per channel",
        WEEKLY_CHART: "Messages per customer per week",
    }
    if uplift is not None:
        tables += uplift_tables(uplift)
        captions[UPLIFT_CHART] = "Uplift per journey step, with its 95% interval"
    charts = _draw_charts(data, out_dir, clock_factor, uplift)
    markdown = out_dir / MARKDOWN_FILE
    markdown.write_text(_markdown(title, intro, tables, captions), encoding="utf-8")
    page = out_dir / HTML_FILE
    page.write_text(_html(title, intro, tables, captions), encoding="utf-8")
    return ReportFiles(markdown=markdown, html=page, charts=charts)


def _unit(clock_factor: float) -> str:
    return "s" if clock_factor == 1 else "real s"


def _intro(data: ReportData, clock_factor: float) -> list[str]:
    lines = []
    if data.first_at is None or data.last_at is None:
        lines.append("No outcomes or dispatches in the range read.")
    else:
        lines.append(
            f"Records from {_when(data.first_at)} to {_when(data.last_at)} (pipeline clock, "
            "`occurred_at`)."
        )
    lines.append(
        f"Outcomes are de-duplicated by touchpoint id, the first record winning: "
        f"{data.duplicate_outcomes} duplicate outcome record(s) and {data.duplicate_dispatches} "
        "duplicate dispatch record(s) were dropped."
    )
    if clock_factor != 1:
        lines.append(
            f"The pipeline ran on an accelerated clock ({_number(clock_factor)} simulated seconds "
            "per real second): latencies are shown in real seconds (pipeline-clock seconds divided "
            "by that factor); every date is pipeline-clock time."
        )
    if data.skipped:
        shown = ", ".join(data.skipped[:10]) + (" ..." if len(data.skipped) > 10 else "")
        lines.append(
            f"{len(data.skipped)} record(s) could not be decoded and are not counted: {shown}."
        )
    return lines


def _tables(data: ReportData, clock_factor: float) -> list[_Table]:
    unit = _unit(clock_factor)
    tables = [
        _Table(
            "Outcomes per journey step",
            (
                "journey",
                "step",
                "dispatched",
                "delivered",
                "failed",
                "suppressed",
                "expired",
                "in flight",
            ),
            tuple(
                (
                    row.journey,
                    row.step,
                    str(row.dispatched),
                    str(row.delivered),
                    str(row.failed),
                    str(row.suppressed),
                    str(row.expired),
                    str(row.in_flight),
                )
                for row in (*data.steps, data.totals)
            ),
            "In flight: dispatched, with no outcome yet. Suppressed and expired touchpoints may "
            "never have been dispatched.",
            numeric_from=2,
        ),
        _Table(
            "Why touchpoints were suppressed or failed",
            ("journey", "step", "outcome", "reason", "touchpoints"),
            tuple(
                (row.journey, row.step, outcome, reason, str(count))
                for row in data.steps
                for outcome, reasons in (
                    ("SUPPRESSED", row.suppressed_by_reason),
                    ("FAILED", row.failed_by_reason),
                )
                for reason, count in reasons.items()
            ),
            numeric_from=4,
        ),
        _Table(
            "Delivered per channel",
            ("channel", "delivered"),
            tuple((channel, str(count)) for channel, count in data.delivered_by_channel.items()),
        ),
        _Table(
            f"Latency per channel, dispatch to provider acceptance ({unit})",
            ("channel", "delivered", "p50", "p95", "p99"),
            tuple(
                (
                    latency.channel,
                    str(latency.count),
                    *(
                        format_seconds(value / clock_factor)
                        for value in (latency.p50, latency.p95, latency.p99)
                    ),
                )
                for latency in data.latency
            ),
            "`accepted_at - dispatched_at` of delivered touchpoints.",
        ),
    ]
    weekly = data.weekly
    tables.append(
        _Table(
            "Messages per customer per week",
            ("", "customers", "customer-weeks", "mean", "p99", "max", "max engagement"),
            tuple(
                (
                    label,
                    str(load.customers),
                    str(load.customer_weeks),
                    _number(load.mean),
                    _number(load.p99),
                    str(load.max),
                    str(load.max_engagement),
                )
                for label, load in (
                    ("as sent", weekly),
                    ("without digests", data.weekly_without_digests),
                )
            ),
            "Delivered messages per customer per ISO week (UTC) of `occurred_at`"
            + (f", weeks {weekly.weeks[0]} to {weekly.weeks[-1]}" if weekly.weeks else "")
            + "; customers with no message in a week are not counted for it. Max engagement: "
            "the most non-transactional messages one customer received in one week. Without "
            "digests: as if every touchpoint a digest folded into another (SUPPRESSED `digest`) "
            "had gone on its own.",
            numeric_from=1,
        )
    )
    tables.append(
        _Table(
            "Customer-weeks by messages received",
            ("messages in the week", "customer-weeks"),
            tuple((str(n), str(count)) for n, count in weekly.histogram.items()),
            numeric_from=0,
        )
    )
    return tables


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def format_seconds(value: float) -> str:
    """A duration in seconds, three significant digits, no exponent: 0.0123, 4.56, 789."""
    if value >= 100:
        return f"{value:.0f}"
    if value == 0:
        return "0"
    if value < 0.001:
        return "<0.001"
    return f"{value:.3g}"


def _markdown(title: str, intro: list[str], tables: list[_Table], captions: dict[str, str]) -> str:
    out = [f"# {title}", ""]
    for line in intro:
        out += [line, ""]
    for table in tables:
        out += [f"## {table.title}", ""]
        if table.note:
            out += [table.note, ""]
        if not table.rows:
            out += ["(none)", ""]
            continue
        align = ["---:" if i >= table.numeric_from else "---" for i in range(len(table.headers))]
        out.append("| " + " | ".join(_cell_md(h) for h in table.headers) + " |")
        out.append("|" + "|".join(align) + "|")
        out += ["| " + " | ".join(_cell_md(c) for c in row) + " |" for row in table.rows]
        out.append("")
    out += ["## Charts", ""]
    for name, caption in captions.items():
        out += [f"![{caption}]({name})", ""]
    return "\n".join(out)


def _cell_md(text: str) -> str:
    return text.replace("|", "\\|") if text else " "


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222;
       padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { padding: 0.25rem 0.75rem; border-bottom: 1px solid #ddd; text-align: left; }
th { background: #f3f3f3; } td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr:last-child td { border-bottom: none; }
p.note { color: #555; font-size: 0.9rem; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; }
"""


def _html(title: str, intro: list[str], tables: list[_Table], captions: dict[str, str]) -> str:
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
    ]
    out += [f"<p>{_code_html(line)}</p>" for line in intro]
    for table in tables:
        out.append(f"<h2>{esc(table.title)}</h2>")
        if table.note:
            out.append(f'<p class="note">{_code_html(table.note)}</p>')
        if not table.rows:
            out.append("<p>(none)</p>")
            continue
        out.append("<table>")
        out.append(f"<thead><tr>{_cells(table.headers, 'th', table.numeric_from)}</tr></thead>")
        out.append("<tbody>")
        out += [f"<tr>{_cells(row, 'td', table.numeric_from)}</tr>" for row in table.rows]
        out.append("</tbody></table>")
    out.append("<h2>Charts</h2>")
    for name, caption in captions.items():
        out.append(
            f'<figure><img src="{esc(name)}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def _cells(row: tuple[str, ...], tag: str, numeric_from: int) -> str:
    return "".join(
        f'<{tag} class="n">{html.escape(c)}</{tag}>'
        if i >= numeric_from
        else f"<{tag}>{html.escape(c)}</{tag}>"
        for i, c in enumerate(row)
    )


def _code_html(text: str) -> str:
    """Escape ``text`` and turn Markdown `code` spans into <code> elements."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))


# -- charts ------------------------------------------------------------------------------------

_COLOURS = {
    "delivered": "#2e7d32",
    "failed": "#c62828",
    "suppressed": "#9e9e9e",
    "expired": "#ef6c00",
    "in flight": "#1565c0",
}


def _draw_charts(
    data: ReportData, out_dir: Path, clock_factor: float, uplift: Uplift | None = None
) -> list[Path]:
    # The Agg canvas is set on each figure explicitly: no display, no global backend switch,
    # and pyplot's global figure registry is never touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    paths = []
    drawings: list[tuple[str, Any]] = [
        (OUTCOMES_CHART, lambda figure: _outcomes_chart(figure, data, clock_factor)),
        (LATENCY_CHART, lambda figure: _latency_chart(figure, data, clock_factor)),
        (WEEKLY_CHART, lambda figure: _weekly_chart(figure, data, clock_factor)),
    ]
    if uplift is not None:
        drawings.append((UPLIFT_CHART, lambda figure: _uplift_chart(figure, uplift)))
    for name, draw in drawings:
        figure = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
        draw(figure)
        path = out_dir / name
        # No "Software" entry: the same data gives the same bytes across matplotlib versions.
        figure.savefig(path, format="png", metadata={"Software": None})
        paths.append(path)
    return paths


def _empty(figure: Figure, title: str, message: str) -> None:
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()


def _outcomes_chart(figure: Figure, data: ReportData, clock_factor: float) -> None:
    from matplotlib.ticker import MaxNLocator

    title = "Outcomes per journey"
    journeys: dict[str, Counter[str]] = defaultdict(Counter)
    for row in data.steps:
        journeys[row.journey].update(
            {
                "delivered": row.delivered,
                "failed": row.failed,
                "suppressed": row.suppressed,
                "expired": row.expired,
                "in flight": row.in_flight,
            }
        )
    if not journeys:
        _empty(figure, title, "no outcomes")
        return
    names = sorted(journeys, reverse=True)  # top to bottom in alphabetical order
    figure.set_figheight(max(2.5, 1.0 + 0.35 * len(names)))
    axes = figure.add_subplot()
    left = [0] * len(names)
    for kind, colour in _COLOURS.items():
        values = [journeys[name][kind] for name in names]
        axes.barh(names, values, left=left, color=colour, label=kind)
        left = [a + b for a, b in zip(left, values, strict=True)]
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(title)
    axes.set_xlabel("touchpoints")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


def _latency_chart(figure: Figure, data: ReportData, clock_factor: float) -> None:
    title = f"Dispatch to provider acceptance per channel ({_unit(clock_factor)})"
    if not data.latency:
        _empty(figure, title, "no delivered touchpoints")
        return
    axes = figure.add_subplot()
    width = 0.27
    positions = list(range(len(data.latency)))
    for i, (label, colour) in enumerate(
        (("p50", "#90caf9"), ("p95", "#1e88e5"), ("p99", "#0d47a1"))
    ):
        values = [getattr(latency, label) / clock_factor for latency in data.latency]
        axes.bar([p + (i - 1) * width for p in positions], values, width, label=label, color=colour)
    axes.set_xticks(positions, [latency.channel for latency in data.latency])
    axes.set_title(title)
    axes.set_ylabel("seconds" if clock_factor == 1 else "real seconds")
    axes.legend(fontsize="small")


def _weekly_chart(figure: Figure, data: ReportData, clock_factor: float) -> None:
    from matplotlib.ticker import MaxNLocator

    title = "Delivered messages per customer per week"
    histogram = data.weekly.histogram
    if not histogram:
        _empty(figure, title, "no delivered messages")
        return
    axes = figure.add_subplot()
    axes.bar(list(histogram), list(histogram.values()), width=0.8, color="#6a1b9a")
    if len(histogram) <= 20:
        axes.set_xticks(list(histogram))
    else:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(title)
    axes.set_xlabel("messages received in one ISO week")
    axes.set_ylabel("customer-weeks")


# -- uplift ------------------------------------------------------------------------------------


def uplift_tables(uplift: Uplift) -> list[_Table]:
    """The holdout groups and, per journey step and outcome, what the step changes."""
    days = uplift.window / _DAY
    window = f"{days:g} day{'s' if days != 1 else ''}"
    until = _when(uplift.observed_until) if uplift.observed_until else "no input events read"
    groups = _Table(
        "Holdout groups",
        ("journey", "step", "treated", "held out", "window still open"),
        tuple(
            (
                unit.journey,
                unit.step,
                str(len(unit.treated.exposures)),
                str(len(unit.held_out.exposures)),
                str(unit.treated.open + unit.held_out.open),
            )
            for unit in uplift.steps
        ),
        "Journeys and steps with a holdout, in customers. Treated: dispatched. Held out: "
        "SUPPRESSED `holdout`, decided after every other check, so both groups would have been "
        "sent. A journey holdout is measured from the first touchpoint of each run of the "
        "journey (`whole journey` when runs start at different steps). Each customer is followed "
        f"for {window} after the `due_at` of their first touchpoint; those whose window ends after "
        f"the last input event read ({until}) are not measured yet.",
        numeric_from=2,
    )
    rows = _Table(
        "Uplift per journey step",
        (
            "journey",
            "step",
            "outcome",
            "treated",
            "held out",
            "treated rate",
            "held-out rate",
            "uplift",
            "95% CI",
            "relative (95% CI)",
            "verdict",
        ),
        tuple(_uplift_cells(row) for row in uplift.rows),
        f"What each customer did within {window} of the touchpoint. Rates in percent, uplift in "
        "percentage points (pts), revenue as the mean per touchpoint in the currency (minor units "
        "by the currency's ISO 4217 exponent: JPY 0 decimals, EUR 2, BHD 3). Intervals: "
        "Newcombe's score interval for rates, Welch's (normal approximation) for means; for the "
        "relative uplift Katz's log interval (rates) and the delta method (means). Verdicts come "
        "from the two-proportion z-test (Welch's for means), Holm-adjusted across every comparison "
        "in this report, so that one in twenty null effects does not read as a finding: an "
        "interval that just excludes zero can still say no measurable effect. Each customer counts "
        "once per row, from their first touchpoint in it. The rating is of those who gave "
        "feedback in the window, and whether they did may itself be what the message changed.",
        numeric_from=3,
    )
    return [groups, rows]


def _uplift_cells(row: UpliftRow) -> tuple[str, ...]:
    metric = row.metric
    comparison = row.comparison
    label = metric.name.replace("_", " ")
    if comparison is None:
        return (row.journey, row.step, label, str(row.treated), str(row.held_out), *["-"] * 5,
                row.verdict)  # fmt: skip
    effect = comparison.absolute

    def value(v: float) -> str:
        if metric.currency:
            return format_minor(v, metric.currency)
        return f"{v:,.2f}" if metric.mean else f"{v * 100:.1f}%"

    relative = "-"
    if comparison.relative is not None:
        r = comparison.relative
        relative = f"{r.estimate * 100:+.0f}% ({r.low * 100:+.0f}% to {r.high * 100:+.0f}%)"
    return (
        row.journey,
        row.step,
        label,
        str(row.treated),
        str(row.held_out),
        value(comparison.treated),
        value(comparison.held_out),
        format_effect(metric, effect.estimate, sign=True),
        f"{format_effect(metric, effect.low, sign=True)} to "
        f"{format_effect(metric, effect.high, sign=True)}",
        relative,
        row.verdict,
    )


_DAY = timedelta(days=1)


def _uplift_chart(figure: Figure, uplift: Uplift) -> None:
    title = "Uplift per journey step, percentage points (95% interval)"
    shown = [r for r in uplift.rows if not r.metric.mean and r.comparison is not None]
    if not shown:
        _empty(figure, title, "no step has enough treated and held-out touchpoints yet")
        return
    shown.reverse()  # top to bottom in the tables' order
    figure.set_figheight(max(2.5, 1.0 + 0.28 * len(shown)))
    axes = figure.add_subplot()
    for y, row in enumerate(shown):
        assert row.comparison is not None
        effect = row.comparison.absolute
        colour = ("#2e7d32" if row.measurable and (effect.estimate > 0) == (row.metric.better > 0)
                  else "#c62828" if row.measurable else "#757575")  # fmt: skip
        axes.errorbar(
            effect.estimate * 100,
            y,
            xerr=[[(effect.estimate - effect.low) * 100], [(effect.high - effect.estimate) * 100]],
            fmt="o",
            color=colour,
            capsize=3,
        )
    axes.axvline(0, color="#222", linewidth=0.8)
    axes.set_yticks(
        range(len(shown)),
        [f"{r.journey}.{r.step}: {r.metric.name.replace('_', ' ')}" for r in shown],
        fontsize="small",
    )
    axes.set_title(title)
    axes.set_xlabel("treated minus held out (green: a measurable gain, red: a loss)")
