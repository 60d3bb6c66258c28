"""`aftercare simulate --dry-run`: the events as JSON lines, for jq and `aftercare produce`."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.journeysfile import load_journeys
from pipeline.jsonio import from_json
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.simulate.cli import add_commands
from pipeline.simulate.population import Plan, simulate

SCHEMAS = SchemaSet.load()


def _run(*argv: str, env: dict[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aftercare")
    add_commands(parser.add_subparsers(required=True))
    args = parser.parse_args(["simulate", *argv])
    result: int = args.handler(Settings.from_env(env or {}), args)
    return result


def test_dry_run_prints_every_event_of_the_plan_as_a_json_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ("--customers", "12", "--days", "20", "--seed", "5", "--start", "2026-06-01T06:00Z")
    assert _run(*argv, "--dry-run") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    plan = Plan(
        customers=12,
        days=20,
        seed=5,
        start=datetime(2026, 6, 1, 6, tzinfo=UTC),
        holdouts=load_journeys().holdouts,  # the customers react to what they are sent
    )
    expected = list(simulate(plan))
    assert len(lines) == len(expected)
    for line, event in zip(lines, expected, strict=True):
        role = TopicRole(line["topic"])
        assert role is event.role
        full_name = RECORD_OF_TOPIC[role]
        record = from_json(SCHEMAS.current(full_name).parsed, line["record"])
        assert record == event.record  # what `aftercare produce` would send


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--customers", "0"), "0 is not a positive whole number"),
        (("--customers", "many"), "'many' is not a whole number"),
        (("--days", "-1"), "-1 is not above 0"),
        (("--factor", "fast"), "'fast' is not a number"),
        (("--start", "2026-03-02T08:00"), "needs a time zone (add Z for UTC)"),
        (("--start", "March"), "'March' is not an ISO 8601 instant"),
    ],
)
def test_options_that_make_no_sense_are_refused_with_the_reason(
    argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        _run(*argv, "--dry-run")
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_journeys_file_the_worker_would_refuse_is_refused_here_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "journeys.yaml"
    bad.write_text(
        "version: 1\nholdouts: {global: lots}\njourneys:\n  receipt:\n"
        "    priority: transactional\n    trigger: ORDER_PLACED\n"
        "    steps: [{name: confirm, channels: [email], validity: 1d}]\n"
    )
    assert _run("--dry-run", env={"AFTERCARE_JOURNEYS_FILE": str(bad)}) == 1
    assert capsys.readouterr().err.strip() == (
        f"aftercare simulate: the journeys file: {bad}:2: holdouts.global 'lots' is not a share "
        "like 10% or 2.5%"
    )
