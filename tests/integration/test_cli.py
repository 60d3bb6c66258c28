"""The `aftercare` command as an upstream team uses it: produce JSON lines, read them back."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from pipeline.config import Settings

pytestmark = pytest.mark.integration


def _aftercare(kafka: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    prefix = kafka.topic_prefix
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AFTERCARE_TOPIC_PREFIX": prefix},
        check=False,
    )


async def test_produce_refuses_bad_lines_with_the_reason_and_sends_good_ones(
    kafka: Settings,
) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    good = {
        "event_id": "cli-1",
        "customer_id": "cli-customer",
        "occurred_at": now,
        "type": "SHIPPED",
        "order_id": "o-9",
        "shipment_id": "s-9",
        "tracking_url": "https://tracking.example.org/s-9",
    }
    lines = [
        json.dumps(good),
        json.dumps({**good, "event_id": "cli-2", "tracking_url": "ftp://nope"}),
        json.dumps({**good, "event_id": "cli-3", "type": "TELEPORTED"}),
        "{not json",
    ]
    produced = await asyncio.to_thread(
        _aftercare, kafka, "produce", "shipments", stdin="\n".join(lines) + "\n"
    )
    assert produced.returncode == 1
    assert "sent 1 record(s)" in produced.stdout
    assert "line 2: not sent: tracking_url 'ftp://nope' is not an http(s) link" in produced.stderr
    assert "line 3: not sent: type: 'TELEPORTED' is not one of" in produced.stderr
    assert "line 4: not sent:" in produced.stderr

    consumed = await asyncio.to_thread(
        _aftercare, kafka, "consume", "shipments", "--idle-seconds", "2"
    )
    assert consumed.returncode == 0, consumed.stderr
    records = [json.loads(line)["record"] for line in consumed.stdout.splitlines()]
    mine = [r for r in records if r["customer_id"] == "cli-customer"]
    assert len(mine) == 1
    assert mine[0]["occurred_at"] == now.replace("Z", ".000Z")
    assert mine[0]["carrier"] is None


def test_an_unknown_topic_is_one_clear_line(kafka: Settings) -> None:
    result = _aftercare(kafka, "consume", "orders")
    assert result.returncode == 1
    assert result.stderr.startswith("aftercare: 'orders' is not one of Aftercare's topics")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bad_setting_is_one_clear_line(kafka: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "topics", "check"],
        capture_output=True,
        text=True,
        env={**os.environ, "AFTERCARE_INPUT_PARTITIONS": "lots"},
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "aftercare: AFTERCARE_INPUT_PARTITIONS must be a positive integer, got 'lots'."
    )
