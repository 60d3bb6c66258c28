"""Clocks: accelerated processes agree on simulated time; tests move time by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.clock import AcceleratedClock, ManualClock
from pipeline.config import Settings

START = datetime(2026, 3, 1, tzinfo=UTC)


def test_two_accelerated_clocks_with_the_same_epoch_agree() -> None:
    wall = [1000.0]
    first = AcceleratedClock(START, 3600, epoch=1000.0, wall=lambda: wall[0])
    wall[0] = 1002.0
    second = AcceleratedClock(START, 3600, epoch=1000.0, wall=lambda: wall[0])
    assert first.now() == second.now() == START + timedelta(hours=2)
    assert first.real_seconds_until(START + timedelta(hours=3)) == pytest.approx(1.0)
    assert first.real_seconds_until(START) == 0.0


def test_a_manual_clock_moves_only_forward() -> None:
    clock = ManualClock(START)
    assert clock.advance(timedelta(days=2)) == START + timedelta(days=2)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))


def test_settings_build_the_clock_every_process_shares() -> None:
    clock = Settings.from_env(
        {
            "AFTERCARE_CLOCK_FACTOR": "86400",
            "AFTERCARE_CLOCK_START": "2026-03-01T00:00:00Z",
            "AFTERCARE_CLOCK_EPOCH": "1000",
        }
    ).clock()
    assert isinstance(clock, AcceleratedClock)
    assert (clock.start, clock.factor, clock.epoch) == (START, 86400, 1000.0)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"AFTERCARE_CLOCK_FACTOR": "0"}, "positive number"),
        ({"AFTERCARE_CLOCK_START": "yesterday"}, "not an ISO 8601 instant"),
        ({"AFTERCARE_CLOCK_START": "2026-03-01T00:00:00"}, "needs a time zone"),
    ],
)
def test_a_bad_clock_setting_is_refused(env: dict[str, str], words: str) -> None:
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match=words):
        Settings.from_env(env)
