"""The pieces of `aftercare deliveries` and `aftercare report` that need no broker."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline.analytics.cli import add_commands, clock_factor_for_report, human_line, json_line
from pipeline.analytics.reading import Record
from pipeline.cliargs import instant
from pipeline.codec import DeadLetterError, DecodeError
from pipeline.config import Settings
from tests.samples import T0, delivery_outcome


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-02T09:30:00Z", T0),
        ("2026-03-02T10:30:00+01:00", T0),
        ("2026-03-02", datetime(2026, 3, 2, tzinfo=UTC)),
    ],
)
def test_instants(text: str, expected: datetime) -> None:
    moment = instant(text)
    assert moment == expected
    assert moment.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "complaint"),
    [("2026-03-02T09:30:00", "needs a time zone"), ("yesterday", "is not an ISO 8601 instant")],
)
def test_bad_instants_are_refused(text: str, complaint: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=complaint):
        instant(text)


def test_the_commands_parse() -> None:
    parser = argparse.ArgumentParser(prog="aftercare")
    add_commands(parser.add_subparsers(required=True))
    tail = parser.parse_args(["deliveries", "--follow", "--json", "--since", "2026-03-02"])
    assert (tail.follow, tail.json, tail.since, tail.until) == (
        True,
        True,
        datetime(2026, 3, 2, tzinfo=UTC),
        None,
    )
    report = parser.parse_args(["report", "--clock-factor", "32400", "--until", "2026-03-09"])
    assert report.clock_factor == 32400.0
    assert str(report.out) == "aftercare-report"
    with pytest.raises(SystemExit):
        parser.parse_args(["report", "--clock-factor", "0"])


def test_a_human_line_has_time_status_step_channel_customer_and_why() -> None:
    delivered = human_line(delivery_outcome())
    assert delivered.split() == [
        "2026-03-02T09:30:02.000Z",
        "DELIVERED",
        "order_confirmation/confirm",
        "EMAIL",
        "cust-1",
        "-",
    ]
    suppressed = human_line(
        delivery_outcome(
            status="SUPPRESSED",
            channel=None,
            reason="frequency_cap",
            detail="3 engagement messages in 7 days",
            occurred_at=datetime(2026, 3, 2, 10, 30, tzinfo=timezone(timedelta(hours=1))),
        )
    )
    assert suppressed.index("SUPPRESSED") == delivered.index("DELIVERED")
    assert suppressed.index("cust-1") == delivered.index("cust-1")
    assert suppressed.startswith("2026-03-02T09:30:00.000Z")
    assert suppressed.endswith("cust-1            frequency_cap: 3 engagement messages in 7 days")


def test_json_lines_carry_the_record_and_where_it_was() -> None:
    good = Record("deliveries", 1, 42, T0, delivery_outcome())
    line = json_line(good)
    assert (line["partition"], line["offset"], line["status"]) == (1, 42, "DELIVERED")
    assert line["accepted_at"] == "2026-03-02T09:30:02.000Z"
    error = DecodeError(DeadLetterError.NOT_AVRO, "the value starts with 6e 6f")
    bad = json_line(Record("deliveries", 0, 7, T0, None, error))
    assert bad == {
        "partition": 0,
        "offset": 7,
        "error": "NOT_AVRO",
        "reason": "the value starts with 6e 6f",
    }


def _run_home(tmp_path: Path, stamp: str, prefix: str, factor: float) -> Path:
    home = tmp_path / "home"
    (home / "runs" / stamp).mkdir(parents=True)
    (home / "runs" / stamp / "run.json").write_text(
        json.dumps({"pid": 1, "topic_prefix": prefix, "clock_factor": factor})
    )
    return home


def test_the_report_takes_the_clock_factor_its_run_recorded(tmp_path: Path) -> None:
    home = _run_home(tmp_path, "20261203T080000Z", "demo-20261203T080000Z.", 32400.0)
    env = {"AFTERCARE_HOME": str(home), "AFTERCARE_TOPIC_PREFIX": "demo-20261203T080000Z."}
    factor, source = clock_factor_for_report(Settings.from_env(env), None)
    assert factor == 32400.0
    assert source.startswith("recorded by the run")
    # What is said outright wins: the option, then the setting.
    explicit = {**env, "AFTERCARE_CLOCK_FACTOR": "100"}
    assert clock_factor_for_report(Settings.from_env(explicit), 7.0) == (7.0, "--clock-factor")
    assert clock_factor_for_report(Settings.from_env(explicit), None) == (
        100.0,
        "AFTERCARE_CLOCK_FACTOR",
    )
    # Other topics: real time.
    other = {**env, "AFTERCARE_TOPIC_PREFIX": "shop1."}
    assert clock_factor_for_report(Settings.from_env(other), None) == (1.0, "real time")


def test_a_run_with_a_prefix_of_its_own_is_found_by_its_run_file(tmp_path: Path) -> None:
    home = _run_home(tmp_path, "20261203T080000Z", "test-1234.", 5000.0)
    env = {"AFTERCARE_HOME": str(home), "AFTERCARE_TOPIC_PREFIX": "test-1234."}
    assert clock_factor_for_report(Settings.from_env(env), None)[0] == 5000.0
