"""Argument types shared by the ``aftercare`` subcommands, so that every command reads a number or
an instant the same way and says the same thing when it cannot."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, time, timedelta

from pipeline.journeysfile import parse_duration


def positive(text: str) -> float:
    """A number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value


def instant(text: str) -> datetime:
    """An ISO 8601 instant with a time zone, in UTC; a bare date means midnight UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 instant (like 2026-03-02T09:30:00Z)"
        ) from None
    if moment.tzinfo is None:
        if moment.time() != time(0) or len(text.strip()) > 10:
            raise argparse.ArgumentTypeError(f"{text!r} needs a time zone (add Z for UTC)")
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def duration(text: str) -> timedelta:
    """A span written as in the journeys file: 30m, 48h, 7d, 2w, 1d12h; above zero."""
    found = parse_duration(text)
    if found is None or found <= timedelta(0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 12h, 7d or 2w")
    return found
