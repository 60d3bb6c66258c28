"""The end of a demo run: ``summary.json`` and the table on stdout."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.analytics.report import (
    ReportData,
    ReportFiles,
    format_seconds,
)
from pipeline.analytics.uplift import Uplift, headlines
from pipeline.config import Settings
from pipeline.demo.options import DemoOptions
from pipeline.demo.ports import Ports
from pipeline.demo.runs import RunDir
from pipeline.demo.watch import Tally
from pipeline.simulate.population import Plan


@dataclass(frozen=True)
class Drained:
    """How the drain went, and what the worker and senders said of themselves before stopping."""

    complete: bool  # every event consumed, every dispatched touchpoint ended, all read
    simulated_end: datetime  # the clock when the worker stopped: nothing was decided later
    worker_events: dict[str, int]  # input records by outcome: used, duplicate, stale, ...
    customers_scheduled: int  # customers with a touchpoint due after the run
    sender_duplicates: int  # dispatch records the senders recognised as already ended


def build_summary(
    *,
    run: RunDir,
    settings: Settings,
    options: DemoOptions,
    plan: Plan,
    events: int,
    sent: int,
    customers: int,
    data: ReportData,
    uplift: Uplift,
    files: ReportFiles,
    tally: Tally,
    drained: Drained,
    sandbox_counts: Mapping[str, Any],
    ports: Ports,
    timings: Mapping[str, float],
    children: Mapping[str, Any],
) -> dict[str, Any]:
    journeys: dict[str, dict[str, int]] = {}
    for row in data.steps:
        counts = journeys.setdefault(row.journey, dict.fromkeys(_COLUMNS, 0))
        for column in _COLUMNS:
            counts[column] += getattr(row, column)
    total = data.totals
    accepted = {
        channel: int(results.get("accepted", 0))
        for channel, results in sandbox_counts.items()
        if isinstance(results, dict)
    }
    return {
        "run": {
            "stamp": run.stamp,
            "dir": str(run.path),
            "topic_prefix": settings.topic_prefix,
            "worker_id": settings.worker_id,
            "senders_id": settings.senders_id,
            "bootstrap_servers": settings.bootstrap_servers,
        },
        "options": {**asdict(options), "clock_factor": options.clock_factor},
        "simulated": {
            "start": plan.start.isoformat(),
            "end": drained.simulated_end.isoformat(),
            "days": round((drained.simulated_end - plan.start).total_seconds() / 86400.0, 3),
        },
        "wall_seconds": {name: round(value, 2) for name, value in timings.items()},
        "events": {"customers": customers, "planned": events, "produced": sent},
        "worker_events": drained.worker_events,
        "customers_scheduled_after_the_run": drained.customers_scheduled,
        "journeys": journeys,
        "totals": {column: getattr(total, column) for column in _COLUMNS},
        "delivered_by_channel": dict(data.delivered_by_channel),
        "suppressed_by_reason": dict(total.suppressed_by_reason),
        "expired_by_reason": dict(total.expired_by_reason),
        "failed_by_reason": dict(total.failed_by_reason),
        "duplicates_dropped": {
            "input_events": drained.worker_events.get("duplicate", 0),
            "dispatch_records_at_senders": drained.sender_duplicates,
            "dispatch_records": data.duplicate_dispatches,
            "outcome_records": data.duplicate_outcomes,
        },
        "undecodable_records": tally.undecodable,
        "messages_per_customer_week": {
            label: {"mean": round(load.mean, 3), "p99": load.p99, "max": load.max}
            for label, load in (
                ("as_sent", data.weekly),
                ("without_digests", data.weekly_without_digests),
            )
        },
        "uplift": {
            "window_days": uplift.window.total_seconds() / 86400,
            "steps": headlines(uplift),
            "measurable": [row.verdict for row in uplift.rows if row.measurable],
        },
        "drained": drained.complete,
        "sandbox": {
            "url": ports.sandbox_url,
            "outbox": str(run.outbox),
            "accepted_by_channel": accepted,
        },
        "report": {
            "markdown": str(files.markdown),
            "html": str(files.html),
            "charts": [str(path) for path in files.charts],
        },
        "metrics": {"worker": ports.worker_metrics, "senders": ports.senders_metrics},
        "logs": {
            name: str(run.log(name)) for name in ("sandbox", "senders", "preferences", "worker")
        },
        "children": dict(children),
    }


_COLUMNS = ("dispatched", "delivered", "failed", "suppressed", "expired", "in_flight")


def summary_lines(summary: Mapping[str, Any], data: ReportData, clock_factor: float) -> list[str]:
    headers = ("journey", *_COLUMNS)
    rows = [
        (name, *(str(counts[c]) for c in _COLUMNS))
        for name, counts in sorted(summary["journeys"].items())
    ]
    total = ("total", *(str(summary["totals"][c]) for c in _COLUMNS))
    widths = [max(len(row[i]) for row in [headers, *rows, total]) for i in range(len(headers))]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells)

    rule = "  ".join("-" * width for width in widths)
    simulated = summary["simulated"]
    wall = summary["wall_seconds"]
    duplicates = summary["duplicates_dropped"]
    sandbox = summary["sandbox"]
    lines = [
        "",
        f"Simulated {simulated['start'][:10]} to {simulated['end'][:10]} "
        f"({simulated['days']:.1f} days) in {wall.get('total', 0):.0f} s of wall time; "
        f"{summary['events']['produced']} events from {summary['events']['customers']} customers.",
        "",
        line(headers),
        rule,
        *(line(row) for row in rows),
        rule,
        line(total),
        "",
        "delivered by channel: "
        + (
            ", ".join(f"{k.lower()} {v}" for k, v in summary["delivered_by_channel"].items()) or "-"
        ),
        "suppressed by reason: "
        + (", ".join(f"{k} {v}" for k, v in summary["suppressed_by_reason"].items()) or "-"),
    ]
    if summary["expired_by_reason"]:
        lines.append(
            "expired by reason: "
            + ", ".join(f"{k} {v}" for k, v in summary["expired_by_reason"].items())
        )
    if summary["failed_by_reason"]:
        lines.append(
            "failed by reason: "
            + ", ".join(f"{k} {v}" for k, v in summary["failed_by_reason"].items())
        )
    if data.latency:
        lines.append(
            "dispatch to acceptance, p95: "
            + ", ".join(
                f"{lat.channel.lower()} {format_seconds(lat.p95 / clock_factor)} s"
                for lat in data.latency
            )
            + " (real time)"
        )
    lines += [
        f"duplicates dropped: {duplicates['input_events']} input events (worker), "
        f"{duplicates['dispatch_records_at_senders']} dispatch records (senders), "
        f"{duplicates['outcome_records']} outcome records (report)",
    ]
    unused = [
        f"{summary['worker_events'][outcome]} {what}"
        for outcome, what in (
            ("stale", "stale (older than what the worker already knew of the order)"),
            ("dead_lettered", "dead-lettered (see the dead-letters topic)"),
        )
        if summary["worker_events"].get(outcome)
    ]
    if unused:
        lines.append("input events the worker did not use: " + ", ".join(unused))
    if summary["customers_scheduled_after_the_run"]:
        lines.append(
            f"{summary['customers_scheduled_after_the_run']} customers had touchpoints scheduled "
            "after the simulated span (feedback, cross-sell, ...) when the worker stopped"
        )
    if not summary["drained"]:
        lines.append(
            f"not drained in time: {summary['totals']['in_flight']} touchpoints still in flight "
            "when the run stopped"
        )
    weekly = summary["messages_per_customer_week"]
    sent, alone = weekly["as_sent"], weekly["without_digests"]
    lines.append(
        f"messages per customer per week: mean {sent['mean']:.2f}, p99 {sent['p99']:g}, max "
        f"{sent['max']} (without digests: mean {alone['mean']:.2f}, p99 {alone['p99']:g}, max "
        f"{alone['max']})"
    )
    uplift = summary["uplift"]
    if uplift["steps"]:
        lines += ["", f"uplift against the holdout groups ({uplift['window_days']:g}-day window):"]
        lines += [f"  {line}" for line in uplift["steps"]]
    report = summary["report"]
    lines += [
        "",
        f"report:         {report['html']}",
        f"                {report['markdown']}",
        f"outbox:         {sandbox['outbox']}",
        f"                to browse it: AFTERCARE_SANDBOX_DB={sandbox['outbox']} "
        "aftercare sandbox serve, then aftercare sandbox messages",
        f"summary:        {Path(summary['run']['dir']) / 'summary.json'}",
        f"metrics (live during the run): {summary['metrics']['worker']}, "
        f"{summary['metrics']['senders']}",
    ]
    return lines
