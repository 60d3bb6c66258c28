"""`aftercare deliveries` and `aftercare report` on the real broker.

Real encoded outcomes and dispatches go to topics of their own; the command handlers (built with
``pipeline.analytics.cli.add_commands``) read them back as an analyst would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.analytics.cli import add_commands
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from tests.samples import app_usage, delivery_outcome, purchase, touchpoint_command

pytestmark = pytest.mark.integration

DELIVERY = RECORD_OF_TOPIC[TopicRole.DELIVERIES]
DISPATCH = RECORD_OF_TOPIC[TopicRole.DISPATCH]

# The `aftercare` command with only these subcommands, for tests that need a real process.
SCRIPT = """
import argparse, sys
from pipeline.analytics.cli import add_commands
from pipeline.config import Settings
parser = argparse.ArgumentParser(prog="aftercare")
add_commands(parser.add_subparsers(required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.handler(Settings.from_env(), args))
"""


@pytest.fixture
async def producer(topics: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(acks="all", **topics.kafka_client_kwargs())
    await producer.start()
    yield producer
    await producer.stop()


class Writer:
    """Produces encoded records at a chosen partition and broker timestamp."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer, schemas: SchemaSet):
        self.settings, self.producer, self.schemas = settings, producer, schemas

    async def outcome(self, partition: int, at: datetime, **fields: Any) -> None:
        await self._send(TopicRole.DELIVERIES, DELIVERY, delivery_outcome(**fields), partition, at)

    async def dispatch(self, partition: int, at: datetime, **fields: Any) -> None:
        await self._send(TopicRole.DISPATCH, DISPATCH, touchpoint_command(**fields), partition, at)

    async def event(self, role: TopicRole, record: dict[str, Any]) -> None:
        """An input event, on the partition of its customer (as upstream writes them)."""
        await self.producer.send_and_wait(
            self.settings.topic(role),
            self.schemas.encode(RECORD_OF_TOPIC[role], record),
            key=record["customer_id"].encode(),
        )

    async def raw(self, role: TopicRole, partition: int, value: bytes) -> None:
        await self.producer.send_and_wait(self.settings.topic(role), value, partition=partition)

    async def _send(
        self, role: TopicRole, name: str, record: dict[str, Any], partition: int, at: datetime
    ) -> None:
        await self.producer.send_and_wait(
            self.settings.topic(role),
            self.schemas.encode(name, record),
            key=record["customer_id"].encode(),
            partition=partition,
            timestamp_ms=int(at.timestamp() * 1000),
        )


@pytest.fixture
def writer(topics: Settings, producer: AIOKafkaProducer, schemas: SchemaSet) -> Writer:
    return Writer(topics, producer, schemas)


async def run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="aftercare")
    add_commands(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    # The handlers call asyncio.run, as the aftercare command does; give them a thread.
    result: int = await asyncio.to_thread(args.handler, settings, args)
    return result


def iso(moment: datetime) -> str:
    return moment.isoformat()


def outcome_fields(touchpoint: str, status: str, at: datetime, **more: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event_id": touchpoint,
        "touchpoint_id": touchpoint,
        "occurred_at": at,
        "dispatched_at": at - timedelta(seconds=2),
        "accepted_at": at if status == "DELIVERED" else None,
        "status": status,
    }
    if status != "DELIVERED":
        fields["provider_message_id"] = None
    return {**fields, **more}


async def write_story(writer: Writer, now: datetime) -> None:
    """Two days ago one confirmation went out (its outcome twice, after a crash); in the last
    hour one touchpoint was suppressed, one failed, one is still in flight; and one record on
    deliveries is not Avro at all."""
    old = now - timedelta(days=2)
    await writer.dispatch(0, old, event_id="tp-1", touchpoint_id="tp-1", occurred_at=old)
    for repeat in range(2):
        await writer.outcome(
            0,
            old + timedelta(seconds=repeat),
            **outcome_fields("tp-1", "DELIVERED", old + timedelta(seconds=1), customer_id="ada"),
        )
    await writer.outcome(
        0,
        now,
        **outcome_fields(
            "tp-2",
            "SUPPRESSED",
            now - timedelta(minutes=30),
            customer_id="ada",
            journey="shipped",
            step="tracking",
            reason="frequency_cap",
            detail="3 engagement messages in 7 days",
            channel=None,
            dispatched_at=None,
        ),
    )
    await writer.raw(TopicRole.DELIVERIES, 1, b"not avro")
    for touchpoint, journey, step, minutes in (
        ("tp-3", "delay_notice", "notice", 25),
        ("tp-4", "need_help", "offer", 10),
    ):
        await writer.dispatch(
            1,
            now,
            event_id=touchpoint,
            touchpoint_id=touchpoint,
            customer_id="bob",
            journey=journey,
            step=step,
            occurred_at=now - timedelta(minutes=minutes),
        )
    await writer.outcome(
        1,
        now,
        **outcome_fields(
            "tp-3",
            "FAILED",
            now - timedelta(minutes=20),
            customer_id="bob",
            journey="delay_notice",
            step="notice",
            reason="provider_rejected",
            channel="SMS",
        ),
    )


async def test_deliveries_json_lines_and_since_until(
    topics: Settings, writer: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    await write_story(writer, now)

    assert await run(topics, "deliveries", "--json") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    records = sorted(
        (line["partition"], line["offset"], line.get("touchpoint_id"), line.get("status"))
        for line in lines
    )
    # The tail shows the topic as it is: the repeated outcome twice, the bad record as an error.
    assert records == [
        (0, 0, "tp-1", "DELIVERED"),
        (0, 1, "tp-1", "DELIVERED"),
        (0, 2, "tp-2", "SUPPRESSED"),
        (1, 0, None, None),
        (1, 1, "tp-3", "FAILED"),
    ]
    (bad,) = [line for line in lines if "error" in line]
    assert bad["error"] == "NOT_AVRO"
    (failed,) = [line for line in lines if line.get("status") == "FAILED"]
    assert failed["reason"] == "provider_rejected"
    assert failed["occurred_at"].endswith("Z")

    assert await run(topics, "deliveries", "--json", "--since", iso(now - timedelta(hours=1))) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(line["touchpoint_id"] for line in lines if "error" not in line) == [
        "tp-2",
        "tp-3",
    ]

    assert (
        await run(
            topics,
            "deliveries",
            "--since",
            iso(now - timedelta(hours=1)),
            "--until",
            iso(now - timedelta(minutes=25)),
        )
        == 0
    )
    captured = capsys.readouterr()
    header, *rows = captured.out.splitlines()
    assert header.split()[:3] == ["occurred_at", "status", "journey/step"]
    assert len(rows) == 1
    assert rows[0].split()[1:5] == ["SUPPRESSED", "shipped/tracking", "-", "ada"]
    assert rows[0].endswith("frequency_cap: 3 engagement messages in 7 days")
    # The record that does not decode is reported on stderr, with where it is.
    assert f"{topics.topic(TopicRole.DELIVERIES)}/1/0" in captured.err


async def test_report_counts(
    topics: Settings, writer: Writer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    await write_story(writer, now)

    assert await run(topics, "report", "--out", str(tmp_path / "all"), "--clock-factor", "2") == 0
    printed = capsys.readouterr().out
    assert f"report: {tmp_path / 'all' / 'report.md'}" in printed
    assert "3 touchpoints ended: 1 delivered, 1 failed, 1 suppressed, 0 expired; 1 in flight" in (
        printed
    )
    assert "duplicates dropped (same touchpoint id, first kept): 1 outcome(s)" in printed
    assert "EMAIL 1 real s" in printed  # two pipeline seconds at twice real speed
    markdown = (tmp_path / "all" / "report.md").read_text()
    for row in (
        "| delay_notice | notice | 1 | 0 | 1 | 0 | 0 | 0 |",
        "| need_help | offer | 1 | 0 | 0 | 0 | 0 | 1 |",
        "| order_confirmation | confirm | 1 | 1 | 0 | 0 | 0 | 0 |",
        "| shipped | tracking | 0 | 0 | 0 | 1 | 0 | 0 |",
        "| shipped | tracking | SUPPRESSED | frequency_cap | 1 |",
    ):
        assert row in markdown
    assert "1 record(s) could not be decoded" in markdown
    for chart in ("outcomes-per-journey.png", "latency-per-channel.png"):
        assert (tmp_path / "all" / chart).read_bytes().startswith(b"\x89PNG")

    since = iso(now - timedelta(hours=1))
    assert await run(topics, "report", "--out", str(tmp_path / "hour"), "--since", since) == 0
    markdown = (tmp_path / "hour" / "report.md").read_text()
    assert "order_confirmation" not in markdown
    assert "| all journeys |   | 2 | 0 | 1 | 1 | 0 | 1 |" in markdown
    assert "0 duplicate outcome record(s)" in markdown


async def test_since_finds_records_of_a_clock_that_ran_ahead(
    topics: Settings, writer: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    # An accelerated demo clock writes occurred_at far ahead of the broker's (real) timestamps;
    # a seek by broker time would skip them, so the reader must notice and read it all.
    now = datetime.now(UTC)
    for touchpoint, produced, decided in (
        ("tp-early", now - timedelta(days=2), now + timedelta(days=10)),
        ("tp-late", now - timedelta(days=1), now + timedelta(days=20)),
    ):
        await writer.outcome(
            0, produced, **outcome_fields(touchpoint, "DELIVERED", decided, customer_id="ada")
        )

    since = iso(now + timedelta(days=15))
    assert await run(topics, "deliveries", "--json", "--since", since) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["touchpoint_id"] for line in lines] == ["tp-late"]


def _process(settings: Settings, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "AFTERCARE_TOPIC_PREFIX": settings.topic_prefix},
    )


async def _finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        code = await asyncio.to_thread(process.wait, 60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.stdout is not None
    assert process.stderr is not None
    errors = process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    return code, errors


async def _line(process: subprocess.Popen[str]) -> str:
    """The next line the process prints; killed (which ends the read) if none comes in time."""
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            return await asyncio.to_thread(process.stdout.readline)
    except TimeoutError:
        process.kill()
        raise


async def test_follow_ends_cleanly_on_ctrl_c(topics: Settings, writer: Writer) -> None:
    now = datetime.now(UTC)
    process = _process(topics, "deliveries", "--follow")
    await writer.outcome(0, now, **outcome_fields("tp-1", "DELIVERED", now, customer_id="ada"))
    assert (await _line(process)).startswith("occurred_at")
    assert "DELIVERED" in await _line(process)

    process.send_signal(signal.SIGINT)
    code, errors = await _finish(process)
    assert (code, errors) == (0, "")


async def test_a_closed_pipe_ends_the_tail_without_a_traceback(
    topics: Settings, writer: Writer
) -> None:
    now = datetime.now(UTC)
    process = _process(topics, "deliveries", "--follow", "--json")
    await writer.outcome(0, now, **outcome_fields("tp-1", "DELIVERED", now, customer_id="ada"))
    assert json.loads(await _line(process))["touchpoint_id"] == "tp-1"

    assert process.stdout is not None
    process.stdout.close()  # as `| head -1` does after its line
    await writer.outcome(0, now, **outcome_fields("tp-2", "DELIVERED", now, customer_id="ada"))
    code, errors = await _finish(process)
    assert (code, errors) == (0, "")


async def test_report_uplift_reads_the_input_topics_and_measures_against_the_holdout(
    topics: Settings, writer: Writer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Forty cross-sell offers went out and forty were held out; half of those who got it ordered
    again within the week, two of the held out did. Read back from the topics as analysts do."""
    due = datetime.now(UTC) - timedelta(days=20)
    for n in range(40):
        for group in ("got", "held"):
            customer, touchpoint = f"{group}-{n}", f"tp-{group}-{n}"
            identity = {
                "touchpoint_id": touchpoint,
                "customer_id": customer,
                "journey": "cross_sell",
                "step": "offer",
                "priority": "MARKETING",
            }
            if group == "got":
                await writer.dispatch(
                    n % 2, due, event_id=touchpoint, occurred_at=due, due_at=due, **identity
                )
                fields = outcome_fields(touchpoint, "DELIVERED", due, due_at=due, **identity)
            else:
                fields = outcome_fields(
                    touchpoint, "SUPPRESSED", due, due_at=due, reason="holdout",
                    detail="journey holdout 50%", channel=None, dispatched_at=None, **identity,
                )  # fmt: skip
            await writer.outcome(n % 2, due, **fields)
            if (group == "got" and n % 2 == 0) or (group == "held" and n < 2):
                order = purchase(event_id=f"order-{customer}", customer_id=customer,
                                 occurred_at=due + timedelta(days=3), total_minor=4990)  # fmt: skip
                await writer.event(TopicRole.PURCHASES, order)
    await writer.event(
        TopicRole.APP_USAGE,
        app_usage(event_id="later", customer_id="got-0", type="APP_OPENED",
                  occurred_at=due + timedelta(days=10)),
    )  # fmt: skip

    out = tmp_path / "uplift"
    assert await run(topics, "report", "--uplift", "--window", "7d", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "uplift against the holdout groups (7-day window):" in printed
    assert "cross_sell.offer (40 treated, 40 held out): raises repeat purchases by 45.0 pts" in (
        printed
    )
    markdown = (out / "report.md").read_text()
    assert "| cross_sell | offer | repeat purchase | 40 | 40 | 50.0% | 5.0% | +45.0 pts |" in (
        markdown
    )
    assert (out / "uplift-per-journey.png").read_bytes().startswith(b"\x89PNG")

    # A window that has not ended by the last event read: measured later, not now.
    assert await run(topics, "report", "--uplift", "--window", "2w", "--out", str(out)) == 0
    assert "80 still in their window" in capsys.readouterr().out
