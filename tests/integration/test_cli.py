"""The `aftercare` command as an upstream team uses it: produce JSON lines, read them back."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.names import TopicRole

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


def _dry_run(settings: Settings) -> list[str]:
    """The envelope lines of a small simulated population, a month in the past."""
    start = (datetime.now(UTC) - timedelta(days=30)).isoformat(timespec="seconds")
    args = ("--customers", "5", "--days", "10", "--start", start)
    printed = _aftercare(settings, "simulate", "--dry-run", *args)
    assert printed.returncode == 0, printed.stderr
    return printed.stdout.splitlines()


def _consumed(settings: Settings, role: str) -> list[dict[str, Any]]:
    consumed = _aftercare(settings, "consume", role, "--idle-seconds", "2")
    assert consumed.returncode == 0, consumed.stderr
    return [json.loads(line)["record"] for line in consumed.stdout.splitlines()]


async def test_simulate_dry_run_pipes_into_produce_each_envelope_to_its_topic(
    topics: Settings,
) -> None:
    lines = _dry_run(topics)
    by_topic = Counter(json.loads(line)["topic"] for line in lines)
    assert set(by_topic) == {"purchases", "shipments", "app-usage", "preferences"}
    bare = json.dumps(json.loads(lines[0])["record"])  # without its envelope: no topic to go to
    stdin = "\n".join([*lines, bare]) + "\n"

    produced = await asyncio.to_thread(_aftercare, topics, "produce", stdin=stdin)
    assert produced.returncode == 1  # the bare record
    assert produced.stderr.splitlines() == [
        f"line {len(lines) + 1}: not sent: a bare record, and no TOPIC to send it to: give one "
        '(`aftercare produce purchases`) or wrap each line as {"topic": "purchases", "record": '
        "{...}}, as `aftercare simulate --dry-run` prints them"
    ]
    assert produced.stdout.startswith(f"sent {len(lines)} record(s): ")
    assert produced.stdout.strip().endswith("; refused 1")

    for role, count in by_topic.items():
        records = await asyncio.to_thread(_consumed, topics, role)
        expected = [json.loads(line)["record"] for line in lines if f'"topic": "{role}"' in line]
        assert len(records) == count
        assert sorted(r["event_id"] for r in records) == sorted(r["event_id"] for r in expected)


async def test_produce_with_a_topic_sends_its_envelopes_and_counts_the_others(
    topics: Settings,
) -> None:
    lines = _dry_run(topics)
    purchases = sum(json.loads(line)["topic"] == "purchases" for line in lines)

    produced = await asyncio.to_thread(
        _aftercare, topics, "produce", "purchases", stdin="\n".join(lines) + "\n"
    )
    assert produced.returncode == 0, produced.stderr
    assert produced.stdout.strip() == (
        f"sent {purchases} record(s) to {topics.topic(TopicRole.PURCHASES)}; "
        f"skipped {len(lines) - purchases} of other topics"
    )
    assert len(await asyncio.to_thread(_consumed, topics, "purchases")) == purchases
    assert await asyncio.to_thread(_consumed, topics, "shipments") == []


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("servers", "why"),
    [
        (None, "Connection refused"),  # a closed port: refused at once
        ("no-such-broker.invalid:9092", "not known"),  # a name DNS does not know
    ],
)
@pytest.mark.parametrize("command", [["topics", "check"], ["worker"], ["senders"]])
def test_a_cluster_that_does_not_answer_is_one_line_naming_the_servers(
    servers: str | None, why: str, command: list[str]
) -> None:
    servers = servers or f"127.0.0.1:{_free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *command],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": servers,
            "AFTERCARE_PREFERENCES_KEY": "a-key-of-this-test-only-0123456789",
        },
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"aftercare: no Kafka broker answered at {servers} ({servers}: ")
    assert why in done.stderr
    assert "check KAFKA_BOOTSTRAP_SERVERS" in done.stderr
