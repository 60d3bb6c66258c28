"""``aftercare deliveries`` and ``aftercare report``: what reached whom, and when.

    aftercare deliveries [--follow] [--json] [--since ISO] [--until ISO]
    aftercare report [--out DIR] [--since ISO] [--until ISO] [--clock-factor F]
                     [--uplift [--window 7d]]

``deliveries`` prints the outcomes on the ``deliveries`` topic, one aligned line each (time,
status, journey/step, channel, customer, reason and detail), or with ``--json`` one JSON object per
line: the record as ``aftercare consume`` shows it, plus ``partition`` and ``offset``, for ``jq``.
It stops at the end of the topic, or with ``--follow`` waits for more until Ctrl-C.

``report`` reads ``deliveries`` and ``dispatch`` to their current ends and writes a Markdown
report, an HTML page and PNG charts into ``--out`` (default ``./aftercare-report``), then prints
the paths and the headline numbers. ``--clock-factor`` is the pipeline clock's speed, to show
latencies in real seconds; without it, ``AFTERCARE_CLOCK_FACTOR`` when set, else the factor the
``aftercare run`` that made these topics recorded in its run folder, else 1. ``--uplift`` also
reads the input topics (purchases, shipments, app-usage) and adds what each journey step with a
holdout changes: treated against held out, outcome by outcome, within ``--window`` of each
touchpoint's due time (see :mod:`pipeline.analytics.uplift`), printed and written into the report.

``--since`` and ``--until`` are ISO 8601 instants with a time zone (``2026-03-02T09:30:00Z``; a
bare date means midnight UTC) compared with the records' ``occurred_at``, which is pipeline-clock
time: ``since <= occurred_at < until``. See :mod:`pipeline.analytics.reading` for when the reader
can seek instead of reading from the start.

Outcomes and dispatches are de-duplicated by touchpoint id in the report (the first record wins),
never in the ``deliveries`` tail, which shows the topic as it is. Every failure ends in one line on
stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError

from pipeline.analytics.reading import ReadError, Record, read_topic
from pipeline.analytics.report import (
    ReportData,
    ReportFiles,
    format_seconds,
    summarize,
    write_report,
)
from pipeline.analytics.uplift import DEFAULT_WINDOW, Behaviour, Uplift, headlines, measure
from pipeline.cliargs import duration, instant, positive
from pipeline.jsonio import to_json
from pipeline.names import TopicRole

if TYPE_CHECKING:
    from pipeline.config import Settings

DEFAULT_OUT = "aftercare-report"

Handler = Callable[["Settings", argparse.Namespace], int]


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``deliveries`` and ``report`` on the ``aftercare`` command's subparsers."""
    deliveries = subparsers.add_parser(
        "deliveries",
        help="print the outcomes on the deliveries topic, decoded",
        description="Print the outcomes on the deliveries topic, one line each.",
    )
    deliveries.add_argument(
        "--follow", action="store_true", help="keep waiting for new outcomes (Ctrl-C ends)"
    )
    deliveries.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line (the record, partition, offset)",
    )
    _range_options(deliveries)
    deliveries.set_defaults(handler=_guarded("deliveries", _deliveries))

    report = subparsers.add_parser(
        "report",
        help="write a report of the deliveries (Markdown, HTML, PNG charts)",
        description="Read deliveries and dispatch, write a report with tables and charts.",
    )
    report.add_argument(
        "--out",
        type=Path,
        default=Path(DEFAULT_OUT),
        help=f"the folder to write into (default ./{DEFAULT_OUT})",
    )
    _range_options(report)
    report.add_argument(
        "--clock-factor",
        type=positive,
        help="simulated seconds per real second of the pipeline clock, to show latencies in real "
        "seconds (default: AFTERCARE_CLOCK_FACTOR if set, else what `aftercare run` recorded for "
        "these topics, else 1)",
    )
    report.add_argument(
        "--uplift",
        action="store_true",
        help="also read the input topics and measure each held-out journey step against its "
        "holdout group",
    )
    report.add_argument(
        "--window",
        type=duration,
        default=DEFAULT_WINDOW,
        help="with --uplift: how long after a touchpoint's due time its customer's actions count "
        "(default 7d)",
    )
    report.set_defaults(handler=_guarded("report", _report))


def _range_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since",
        type=instant,
        help="only records with occurred_at (pipeline clock) at or after this ISO 8601 instant",
    )
    parser.add_argument(
        "--until",
        type=instant,
        help="only records with occurred_at (pipeline clock) before this ISO 8601 instant",
    )


def _guarded(name: str, handler: Handler) -> Handler:
    def run(settings: Settings, args: argparse.Namespace) -> int:
        _quiet_library_logs()
        try:
            return handler(settings, args)
        except BrokenPipeError:
            # The reader went away (`| head`): not an error. Python flushes stdout once more
            # at exit, so point it at /dev/null to keep that from failing too.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except (ReadError, KafkaError, OSError) as exc:
            print(f"aftercare {name}: {exc}", file=sys.stderr)
            return 1

    return run


def _quiet_library_logs() -> None:
    """Keep aiokafka's warnings (each failed connection attempt) off stderr unless logging is
    configured: a command's failure is the one line its handler prints."""
    library = logging.getLogger("aiokafka")
    if not any(isinstance(h, logging.NullHandler) for h in library.handlers):
        library.addHandler(logging.NullHandler())


# -- aftercare deliveries ----------------------------------------------------------------------


def _deliveries(settings: Settings, args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how --follow ends
        asyncio.run(_tail(settings, args))
    return 0


async def _tail(settings: Settings, args: argparse.Namespace) -> None:
    records = read_topic(
        settings, TopicRole.DELIVERIES, since=args.since, until=args.until, follow=args.follow
    )
    header = not args.json
    async with contextlib.aclosing(records):
        async for record in records:
            if args.json:
                print(json.dumps(json_line(record), ensure_ascii=False), flush=args.follow)
            elif record.record is None:
                print(f"aftercare deliveries: {record.where}: {record.error}", file=sys.stderr)
            else:
                if header:  # once the topic is known to be there, before the first line
                    print(HEADER)
                    header = False
                print(human_line(record.record), flush=args.follow)
    sys.stdout.flush()


def json_line(record: Record) -> dict[str, Any]:
    """The ``--json`` form of a record: its fields plus partition and offset, or the error."""
    where = {"partition": record.partition, "offset": record.offset}
    if record.record is None:
        assert record.error is not None
        return {**where, "error": record.error.kind.value, "reason": record.error.reason}
    return {**to_json(record.record), **where}


_WIDTHS = (24, 10, 34, 8, 16)
HEADER = (
    "  ".join(
        title.ljust(width)
        for title, width in zip(
            ("occurred_at", "status", "journey/step", "channel", "customer"), _WIDTHS, strict=True
        )
    )
    + "  reason: detail"
)


def human_line(outcome: dict[str, Any]) -> str:
    """One aligned line of an outcome."""
    why = outcome.get("reason") or ""
    if outcome.get("detail"):
        why = f"{why}: {outcome['detail']}" if why else str(outcome["detail"])
    cells = (
        to_json(outcome["occurred_at"]),
        outcome["status"],
        f"{outcome['journey']}/{outcome['step']}",
        outcome.get("channel") or "-",
        outcome["customer_id"],
    )
    padded = [str(cell).ljust(width) for cell, width in zip(cells, _WIDTHS, strict=True)]
    return "  ".join([*padded, why or "-"]).rstrip()


# -- aftercare report --------------------------------------------------------------------------


def clock_factor_for_report(settings: Settings, given: float | None) -> tuple[float, str]:
    """The clock factor that turns the records' latencies into real seconds, and whence it came:
    ``--clock-factor``, else AFTERCARE_CLOCK_FACTOR when it is set, else what the ``aftercare
    run`` that made these topics recorded, else 1 (a real-time pipeline)."""
    if given is not None:
        return given, "--clock-factor"
    if "AFTERCARE_CLOCK_FACTOR" in settings.given:
        return settings.clock_factor, "AFTERCARE_CLOCK_FACTOR"
    from pipeline.demo.runs import recorded_clock_factor

    recorded = recorded_clock_factor(settings.local_broker.home, settings.topic_prefix)
    if recorded is not None:
        factor, path = recorded
        return factor, f"recorded by the run, {path}"
    return settings.clock_factor, "real time"


def _report(settings: Settings, args: argparse.Namespace) -> int:
    factor, source = clock_factor_for_report(settings, args.clock_factor)
    if factor != 1:
        print(f"clock x{factor:,.0f} ({source}): latencies below are real seconds")
    data, uplift = asyncio.run(
        collect_all(
            settings,
            since=args.since,
            until=args.until,
            window=args.window if args.uplift else None,
        )
    )
    files = write_report(data, args.out, clock_factor=factor, uplift=uplift)
    for line in report_headlines(data, files, factor):
        print(line)
    if uplift is not None:
        days = uplift.window / timedelta(days=1)
        print(f"uplift against the holdout groups ({days:g}-day window):")
        for line in headlines(uplift) or [
            "no journey step has a holdout group in the records read"
        ]:
            print(f"  {line}")
    return 0


async def collect_all(
    settings: Settings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    window: timedelta | None = None,
) -> tuple[ReportData, Uplift | None]:
    """The report's data and, given a ``window``, the uplift measured from the input topics."""
    if window is None:
        return await collect(settings, since=since, until=until), None
    outcomes: list[dict[str, Any]] = []
    dispatched: list[dict[str, Any]] = []
    data = await collect(settings, since=since, until=until, keep=(outcomes, dispatched))
    # A touchpoint decided after ``since`` may have been due before it (a wait for quiet hours):
    # its window starts at its due time, so read what customers did from the earliest one.
    start = since
    if since is not None:
        dues = [r.get("due_at") or r["occurred_at"] for r in (*outcomes, *dispatched)]
        start = min([since, *dues])
    behaviour = Behaviour()
    await _behaviour(settings, behaviour, start)
    return data, measure(outcomes, behaviour, dispatched, window=window)


async def _behaviour(settings: Settings, behaviour: Behaviour, since: datetime | None) -> None:
    """What customers did, from every input topic, from ``since`` on (windows run past
    ``until``, so it does not bound these)."""
    for role in (TopicRole.PURCHASES, TopicRole.SHIPMENTS, TopicRole.APP_USAGE):
        async for record in read_topic(settings, role, since=since):
            if record.record is not None:
                behaviour.add(record.record)


async def collect(
    settings: Settings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    keep: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None,
) -> ReportData:
    """Read deliveries and dispatch (to their ends) and summarize them; ``keep`` gets the
    outcome and dispatch records read, in that order."""

    async def read(role: TopicRole) -> tuple[list[dict[str, Any]], list[str]]:
        found: list[dict[str, Any]] = []
        skipped: list[str] = []
        async for record in read_topic(settings, role, since=since, until=until):
            if record.record is None:
                skipped.append(record.where)
            else:
                found.append(record.record)
        return found, skipped

    (outcomes, bad_outcomes), (dispatched, bad_dispatches) = await asyncio.gather(
        read(TopicRole.DELIVERIES), read(TopicRole.DISPATCH)
    )
    if keep is not None:
        keep[0].extend(outcomes)
        keep[1].extend(dispatched)
    return summarize(outcomes, dispatched, skipped=[*bad_outcomes, *bad_dispatches])


def report_headlines(data: ReportData, files: ReportFiles, clock_factor: float) -> list[str]:
    """What ``aftercare report`` prints: where the files are and the numbers that matter most."""
    total = data.totals
    unit = "s" if clock_factor == 1 else "real s"
    lines = [
        f"report: {files.markdown}",
        f"        {files.html}",
        *(f"chart:  {path}" for path in files.charts),
        f"{total.ended} touchpoints ended: {total.delivered} delivered, {total.failed} failed, "
        f"{total.suppressed} suppressed, {total.expired} expired; {total.in_flight} in flight",
        f"duplicates dropped (same touchpoint id, first kept): {data.duplicate_outcomes} "
        f"outcome(s), {data.duplicate_dispatches} dispatch(es)",
    ]
    if data.latency:
        p95 = ", ".join(
            f"{latency.channel} {format_seconds(latency.p95 / clock_factor)} {unit}"
            for latency in data.latency
        )
        lines.append(f"p95 dispatch to acceptance: {p95}")
    weekly = data.weekly
    if weekly.customer_weeks:
        lines.append(
            f"messages per customer per week: mean {weekly.mean:.2f}, p99 {weekly.p99:.2f}, "
            f"max {weekly.max} (engagement max {weekly.max_engagement}); without digests: mean "
            f"{data.weekly_without_digests.mean:.2f}, p99 {data.weekly_without_digests.p99:.2f}, "
            f"max {data.weekly_without_digests.max}"
        )
    if data.skipped:
        lines.append(f"{len(data.skipped)} record(s) could not be decoded; see the report")
    return lines
