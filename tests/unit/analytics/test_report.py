"""summarize() counts what the deliveries and dispatch topics say; write_report() writes it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.analytics.report import (
    LATENCY_CHART,
    OUTCOMES_CHART,
    WEEKLY_CHART,
    ReportData,
    format_seconds,
    quantile,
    summarize,
    write_report,
)
from tests.samples import T0, delivery_outcome, touchpoint_command

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def outcome(touchpoint: str, status: str = "DELIVERED", **overrides: Any) -> dict[str, Any]:
    """An outcome of ``touchpoint``; a non-delivered one has no channel and no acceptance."""
    fields: dict[str, Any] = {"event_id": touchpoint, "touchpoint_id": touchpoint}
    if status != "DELIVERED":
        fields |= {"status": status, "accepted_at": None, "provider_message_id": None}
    return delivery_outcome(**fields, **overrides)


def dispatch(touchpoint: str, **overrides: Any) -> dict[str, Any]:
    return touchpoint_command(event_id=touchpoint, touchpoint_id=touchpoint, **overrides)


def waited(touchpoint: str, seconds: float, channel: str = "EMAIL") -> dict[str, Any]:
    sent = T0 + timedelta(seconds=1)
    return outcome(
        touchpoint,
        channel=channel,
        dispatched_at=sent,
        accepted_at=sent + timedelta(seconds=seconds),
    )


def view(data: ReportData) -> dict[str, Any]:
    """The numbers of a report, flattened for comparison."""
    return {
        "rows": {
            (r.journey, r.step): (r.dispatched, r.delivered, r.failed, r.suppressed, r.expired)
            for r in data.steps
        },
        "in_flight": {(r.journey, r.step): r.in_flight for r in data.steps},
        "totals": (
            data.totals.dispatched,
            data.totals.delivered,
            data.totals.failed,
            data.totals.suppressed,
            data.totals.expired,
            data.totals.in_flight,
        ),
        "suppressed_by_reason": {
            (r.journey, r.step): dict(r.suppressed_by_reason) for r in data.steps
        },
        "failed_by_reason": {(r.journey, r.step): dict(r.failed_by_reason) for r in data.steps},
        "duplicates": (data.duplicate_outcomes, data.duplicate_dispatches),
        "by_channel": dict(data.delivered_by_channel),
        "latency": {x.channel: (x.count, x.p50, x.p95, x.p99) for x in data.latency},
        "weekly": (
            data.weekly.weeks,
            data.weekly.customers,
            data.weekly.customer_weeks,
            data.weekly.mean,
            data.weekly.p99,
            data.weekly.max,
            data.weekly.max_engagement,
            dict(data.weekly.histogram),
        ),
        "range": (data.first_at, data.last_at),
    }


CONFIRM = ("order_confirmation", "confirm")
SHIPPED = ("shipped", "tracking")

CASES: list[
    tuple[str, Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]], dict[str, Any]]
] = [
    (
        "nothing",
        [],
        [],
        {
            "rows": {},
            "totals": (0, 0, 0, 0, 0, 0),
            "duplicates": (0, 0),
            "latency": {},
            "weekly": ((), 0, 0, 0.0, 0.0, 0, 0, {}),
            "range": (None, None),
        },
    ),
    (
        "a repeated outcome counts once, the first one wins",
        [outcome("tp-1"), outcome("tp-1", "FAILED", reason="provider_rejected"), outcome("tp-2")],
        [],
        {"rows": {CONFIRM: (0, 2, 0, 0, 0)}, "duplicates": (1, 0), "by_channel": {"EMAIL": 2}},
    ),
    (
        "suppressed touchpoints are counted by reason, per step and in total",
        [
            outcome("tp-1", "SUPPRESSED", reason="frequency_cap"),
            outcome("tp-2", "SUPPRESSED", reason="no_consent"),
            outcome("tp-3", "SUPPRESSED", reason="frequency_cap"),
            outcome(
                "tp-4", "SUPPRESSED", reason="order_cancelled", journey="shipped", step="tracking"
            ),
            outcome("tp-5", "FAILED", reason="provider_rejected"),
            outcome("tp-6", "EXPIRED", reason="expired"),
        ],
        [],
        {
            "rows": {CONFIRM: (0, 0, 1, 3, 1), SHIPPED: (0, 0, 0, 1, 0)},
            "suppressed_by_reason": {
                CONFIRM: {"frequency_cap": 2, "no_consent": 1},
                SHIPPED: {"order_cancelled": 1},
            },
            "failed_by_reason": {CONFIRM: {"provider_rejected": 1}, SHIPPED: {}},
            "by_channel": {},
            "latency": {},
        },
    ),
    (
        "dispatched without an outcome is in flight; a repeated dispatch counts once",
        [outcome("tp-1"), outcome("tp-9", "SUPPRESSED", reason="no_consent")],
        [
            dispatch("tp-1"),
            dispatch("tp-2"),
            dispatch("tp-2"),
            dispatch("tp-3", journey="shipped", step="tracking"),
        ],
        {
            "rows": {CONFIRM: (2, 1, 0, 1, 0), SHIPPED: (1, 0, 0, 0, 0)},
            "in_flight": {CONFIRM: 1, SHIPPED: 1},
            "totals": (3, 1, 0, 1, 0, 2),
            "duplicates": (0, 1),
        },
    ),
    (
        "latency quantiles per channel interpolate between ranks",
        [
            *(waited(f"tp-{n}", n) for n in range(1, 101)),
            waited("tp-sms-1", 2, "SMS"),
            waited("tp-sms-2", 4, "SMS"),
            outcome("tp-no-dispatch", dispatched_at=None),
        ],
        [],
        {
            "latency": {
                "EMAIL": (100, 50.5, pytest.approx(95.05), pytest.approx(99.01)),
                "SMS": (2, 3.0, pytest.approx(3.9), pytest.approx(3.98)),
            },
            "by_channel": {"EMAIL": 101, "SMS": 2},
        },
    ),
    (
        "messages per customer per ISO week, engagement apart",
        [
            # 2026-03-02 is a Monday: days 0-6 are week 10, day 7 is week 11.
            outcome("tp-1", customer_id="ada", occurred_at=T0),
            outcome("tp-2", customer_id="ada", occurred_at=T0 + timedelta(days=3)),
            outcome(
                "tp-3",
                customer_id="ada",
                occurred_at=T0 + timedelta(days=6, hours=14),
                priority="ENGAGEMENT",
            ),
            outcome("tp-4", customer_id="ada", occurred_at=T0 + timedelta(days=7)),
            outcome("tp-5", customer_id="bob", occurred_at=T0 + timedelta(days=1)),
            outcome(
                "tp-6", "SUPPRESSED", customer_id="bob", occurred_at=T0, reason="frequency_cap"
            ),
        ],
        [],
        {
            "weekly": (
                ("2026-W10", "2026-W11"),
                2,
                3,
                pytest.approx(5 / 3),
                pytest.approx(2.96),
                3,
                1,
                {1: 2, 2: 0, 3: 1},
            ),
            "range": (T0, T0 + timedelta(days=7)),
        },
    ),
    (
        "the time range spans outcomes and dispatches",
        [outcome("tp-1", occurred_at=T0 + timedelta(hours=2))],
        [dispatch("tp-1", occurred_at=T0 + timedelta(hours=1)), dispatch("tp-2")],
        {"range": (T0 + timedelta(seconds=1), T0 + timedelta(hours=2))},
    ),
]


@pytest.mark.parametrize(
    ("outcomes", "dispatched", "expected"),
    [pytest.param(o, d, e, id=name) for name, o, d, e in CASES],
)
def test_summarize(
    outcomes: Sequence[Mapping[str, Any]],
    dispatched: Sequence[Mapping[str, Any]],
    expected: dict[str, Any],
) -> None:
    seen = view(summarize(outcomes, dispatched))
    assert {key: seen[key] for key in expected} == expected


def test_an_unknown_status_is_refused_with_the_touchpoint() -> None:
    with pytest.raises(ValueError, match="touchpoint tp-1 has status 'LOST'"):
        summarize([outcome("tp-1", status="LOST")])


def test_a_step_without_records_reads_as_zeros() -> None:
    data = summarize([outcome("tp-1")])
    assert data.step(*CONFIRM).delivered == 1
    assert data.step("refund", "confirm").ended == 0


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 0.5, 0.0), ([7.0], 0.99, 7.0), ([1.0, 2.0], 0.5, 1.5), ([1.0, 2.0, 4.0], 1.0, 4.0)],
)
def test_quantile(values: list[float], q: float, expected: float) -> None:
    assert quantile(values, q) == expected


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.0, "0"),
        (0.0004, "<0.001"),
        (0.01234, "0.0123"),
        (1.5, "1.5"),
        (12.345, "12.3"),
        (1234.5, "1234"),
    ],
)
def test_format_seconds(seconds: float, shown: str) -> None:
    assert format_seconds(seconds) == shown


def sample_data() -> ReportData:
    sent = T0 + timedelta(seconds=1)
    return summarize(
        [
            outcome("tp-1", dispatched_at=sent, accepted_at=sent + timedelta(seconds=32400)),
            outcome("tp-2", dispatched_at=sent, accepted_at=sent + timedelta(seconds=64800)),
            outcome(
                "tp-3", "SUPPRESSED", reason="frequency_cap", journey="shipped", step="tracking"
            ),
            outcome(
                "tp-4",
                "FAILED",
                reason="provider_rejected",
                channel="SMS",
                journey="delay_notice",
                step="notice",
            ),
            outcome("tp-1"),
        ],
        [dispatch("tp-1"), dispatch("tp-2"), dispatch("tp-5", journey="need_help", step="offer")],
        skipped=["deliveries/1/7"],
    )


def test_write_report_writes_markdown_html_and_charts(tmp_path: Path) -> None:
    files = write_report(sample_data(), tmp_path / "out")

    assert [path.name for path in files.charts] == [OUTCOMES_CHART, LATENCY_CHART, WEEKLY_CHART]
    for chart in files.charts:
        assert chart.parent == tmp_path / "out"
        assert chart.read_bytes().startswith(PNG_MAGIC)
    page = files.html.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page
    for chart in files.charts:
        assert f'<img src="{chart.name}"' in page
    markdown = files.markdown.read_text()
    for row in (
        "| delay_notice | notice | 0 | 0 | 1 | 0 | 0 | 0 |",
        "| need_help | offer | 1 | 0 | 0 | 0 | 0 | 1 |",
        "| order_confirmation | confirm | 2 | 2 | 0 | 0 | 0 | 0 |",
        "| shipped | tracking | 0 | 0 | 0 | 1 | 0 | 0 |",
        "| all journeys |   | 3 | 2 | 1 | 1 | 0 | 1 |",
        "| shipped | tracking | SUPPRESSED | frequency_cap | 1 |",
        "| delay_notice | notice | FAILED | provider_rejected | 1 |",
    ):
        assert row in markdown
        assert row.split(" | ")[0].removeprefix("| ") in page
    assert "1 duplicate outcome record(s)" in markdown
    assert "de-duplicated by touchpoint id" in markdown
    assert "deliveries/1/7" in markdown
    for chart in files.charts:
        assert f"]({chart.name})" in markdown


def test_the_clock_factor_turns_latencies_into_real_seconds(tmp_path: Path) -> None:
    pipeline_time = write_report(sample_data(), tmp_path / "pipeline").markdown.read_text()
    real_time = write_report(
        sample_data(), tmp_path / "real", clock_factor=32400
    ).markdown.read_text()

    assert "dispatch to provider acceptance (s)" in pipeline_time
    assert "| EMAIL | 2 | 48600 | 63180 | 64476 |" in pipeline_time
    assert "accelerated clock" not in pipeline_time
    assert "dispatch to provider acceptance (real s)" in real_time
    assert "| EMAIL | 2 | 1.5 | 1.95 | 1.99 |" in real_time
    assert "accelerated clock (32400 simulated seconds per real second)" in real_time


def test_the_same_data_gives_the_same_files(tmp_path: Path) -> None:
    first = write_report(sample_data(), tmp_path / "a", clock_factor=2.5)
    second = write_report(sample_data(), tmp_path / "b", clock_factor=2.5)
    for one, other in zip(
        [first.markdown, first.html, *first.charts],
        [second.markdown, second.html, *second.charts],
        strict=True,
    ):
        assert one.read_bytes() == other.read_bytes(), one.name


def test_an_empty_report_still_has_every_file(tmp_path: Path) -> None:
    files = write_report(summarize([]), tmp_path)
    assert "No outcomes or dispatches" in files.markdown.read_text()
    assert all(chart.read_bytes().startswith(PNG_MAGIC) for chart in files.charts)


def test_the_report_module_imports_no_kafka_client_and_draws_lazily() -> None:
    code = (
        "import sys, pipeline.analytics.report;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'aiokafka', 'matplotlib'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
