"""The demo's pure parts: counting touchpoints once, naming runs, the clock's speed, the sandbox
settings every child gets."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.analytics.report import summarize
from pipeline.config import Settings
from pipeline.demo.options import DemoError, DemoOptions
from pipeline.demo.ports import Ports, sandbox_channels
from pipeline.demo.runs import RunDir, demo_prefix, run_stamp, stamp_of_topic
from pipeline.demo.watch import Tally

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _dispatch(touchpoint: str, journey: str = "shipped") -> dict[str, Any]:
    return {"touchpoint_id": touchpoint, "journey": journey, "step": "tracking", "occurred_at": AT}


def _outcome(
    touchpoint: str,
    status: str,
    journey: str = "shipped",
    channel: str | None = "EMAIL",
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "touchpoint_id": touchpoint,
        "journey": journey,
        "step": "tracking",
        "status": status,
        "channel": channel,
        "reason": reason,
        "occurred_at": AT,
        "customer_id": "cust-1",
        "priority": "TRANSACTIONAL",
    }


def test_a_touchpoint_counts_once_however_often_its_records_were_written() -> None:
    tally = Tally()
    for record in (_dispatch("a"), _dispatch("b"), _dispatch("a")):
        tally.add_dispatch(record)
    for record in (_outcome("a", "DELIVERED"), _outcome("a", "DELIVERED")):
        tally.add_outcome(record)

    shipped = tally.counting.by_journey()["shipped"]
    assert (shipped.dispatched, shipped.delivered) == (2, 1)
    assert tally.counting.duplicate_dispatches == 1
    assert tally.counting.duplicate_outcomes == 1
    assert tally.counting.conflicting_outcomes == 0
    assert tally.in_flight == 1  # b has no outcome yet
    assert len(tally.dispatch_records) == 3  # the report sees what the topic holds
    assert len(tally.outcome_records) == 2


def test_the_first_outcome_wins_and_a_contradicting_repeat_is_counted() -> None:
    tally = Tally()
    tally.add_outcome(_outcome("a", "DELIVERED"))
    tally.add_outcome(_outcome("a", "FAILED", reason="provider_rejected"))
    assert tally.counting.by_journey()["shipped"].delivered == 1
    assert tally.counting.by_journey()["shipped"].failed == 0
    assert tally.counting.conflicting_outcomes == 1


@pytest.mark.parametrize(
    ("status", "column", "by_reason"),
    [
        ("DELIVERED", "delivered", "delivered_by_channel"),
        ("FAILED", "failed", "failed_by_reason"),
        ("SUPPRESSED", "suppressed", "suppressed_by_reason"),
        ("EXPIRED", "expired", "expired_by_reason"),
    ],
)
def test_each_status_has_its_column_and_its_breakdown(
    status: str, column: str, by_reason: str
) -> None:
    tally = Tally()
    tally.add_outcome(_outcome("a", status, journey="feedback", reason="why"))
    assert getattr(tally.counting.by_journey()["feedback"], column) == 1
    assert getattr(tally.counting.total(), column) == 1
    data = tally.counting.data()
    breakdown = (
        data.delivered_by_channel if status == "DELIVERED" else getattr(data.totals, by_reason)
    )
    key = "EMAIL" if status == "DELIVERED" else "why"
    assert breakdown == {key: 1}


def test_totals_add_up_the_journeys_and_the_summary_says_the_same_as_the_live_view() -> None:
    tally = Tally()
    tally.add_dispatch(_dispatch("a", "shipped"))
    tally.add_dispatch(_dispatch("b", "delivered"))
    tally.add_outcome(_outcome("a", "DELIVERED", "shipped"))
    tally.add_outcome(_outcome("c", "SUPPRESSED", "education", channel=None, reason="no_consent"))
    live = tally.counting.total()
    columns = ("dispatched", "delivered", "failed", "suppressed", "expired", "in_flight")
    assert {c: getattr(live, c) for c in columns} == {
        "dispatched": 2,
        "delivered": 1,
        "failed": 0,
        "suppressed": 1,
        "expired": 0,
        "in_flight": 1,
    }
    assert list(tally.counting.by_journey()) == ["delivered", "education", "shipped"]
    assert live.suppressed_by_reason == {"no_consent": 1}
    summary = summarize(tally.outcome_records, tally.dispatch_records)  # as a report would
    assert tally.counting.data().totals == summary.totals == live


def test_run_names_are_sortable_and_recognisable() -> None:
    stamp = run_stamp(datetime(2026, 3, 2, 8, 0, 5, tzinfo=UTC))
    assert stamp == "20260302T080005Z"
    prefix = demo_prefix(stamp)
    assert prefix == "demo-20260302T080005Z."
    assert stamp_of_topic(f"{prefix}deliveries") == stamp
    assert stamp_of_topic(f"{prefix}aftercare-worker-customers-changelog") == stamp
    assert stamp_of_topic(f"demo-{stamp}-2.dispatch") == f"{stamp}-2"
    for other in ("deliveries", "demo.deliveries", "test-1234abcd.dispatch", f"x{prefix}dispatch"):
        assert stamp_of_topic(other) is None


def test_a_run_stamp_needs_a_time_zone() -> None:
    with pytest.raises(ValueError, match="timezone"):
        run_stamp(datetime(2026, 3, 2, 8, 0))  # noqa: DTZ001 - the point of the test


def test_two_runs_in_the_same_second_get_two_folders(tmp_path: Path) -> None:
    moment = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    first = RunDir.create(tmp_path, moment)
    second = RunDir.create(tmp_path, moment)
    assert first.stamp == "20260302T080000Z"
    assert second.stamp == "20260302T080000Z-2"
    assert first.path.is_dir()
    assert second.path.is_dir()
    assert first.path.parent == tmp_path / "runs"


def test_the_clock_runs_the_simulated_days_in_the_real_minutes() -> None:
    assert DemoOptions().clock_factor == pytest.approx(45 * 86400 / 120)
    assert DemoOptions(days=10, minutes=1).clock_factor == pytest.approx(14400)


@pytest.mark.parametrize("field", ["customers", "days", "minutes", "drain_seconds"])
def test_options_must_be_positive(field: str) -> None:
    with pytest.raises(DemoError, match=f"--{field.replace('_', '-')}"):
        DemoOptions(**{field: 0}).check()


def test_every_channel_of_a_child_reaches_the_runs_own_sandbox() -> None:
    ports = Ports(worker=7001, senders=7002, sandbox_http=7003, sandbox_smtp=7004)
    settings = Settings.from_env(
        {
            # A real provider in the environment must not receive simulated customers' messages.
            "AFTERCARE_SMS_BASE_URL": "https://api.twilio.com",
            "AFTERCARE_SMTP_HOST": "smtp.example.com",
            **sandbox_channels(ports),
        }
    )
    channels = settings.channels
    assert (channels.smtp_host, channels.smtp_port) == ("127.0.0.1", 7004)
    for url in (
        channels.sms_base_url,
        channels.whatsapp_base_url,
        channels.push_base_url,
        channels.webhook_url,
    ):
        assert url.startswith("http://127.0.0.1:7003/")
