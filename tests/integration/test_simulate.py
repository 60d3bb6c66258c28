"""The simulator on the real broker: every event on its topic, keyed and decodable; paced by a
clock, none before its time; stopped, promptly and flushed; and `aftercare simulate` end to end."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from pipeline.clock import ManualClock
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.names import INPUT_ROLES, RECORD_OF_TOPIC, TopicRole
from pipeline.simulate.population import Plan, SimEvent, simulate
from pipeline.simulate.producer import produce
from tests.integration.kafkatools import Offsets, end_offsets, read_range

pytestmark = pytest.mark.integration


async def _offsets(settings: Settings) -> dict[TopicRole, Offsets]:
    return {role: await end_offsets(settings, settings.topic(role)) for role in INPUT_ROLES}


async def _read_since(
    settings: Settings, start: dict[TopicRole, Offsets], customers: str
) -> dict[TopicRole, list[Any]]:
    """The records on each input topic since ``start`` whose key starts with ``customers``."""
    found: dict[TopicRole, list[Any]] = {}
    for role in INPUT_ROLES:
        topic = settings.topic(role)
        end = await end_offsets(settings, topic)
        records = await read_range(settings, topic, start[role], end)
        found[role] = [r for r in records if r.key.decode().startswith(customers)]
    return found


async def test_a_plan_lands_on_the_input_topics_keyed_by_customer_and_decodable(
    kafka: Settings, schemas: SchemaSet
) -> None:
    plan = Plan(customers=20, days=10, seed=7101)
    events = list(simulate(plan))
    start = await _offsets(kafka)
    acknowledged: list[SimEvent] = []

    sent = await produce(kafka, events, on_sent=acknowledged.append)

    assert sent == len(events)
    assert acknowledged == events  # each one, in order
    found = await _read_since(kafka, start, "sim7101-")
    wanted = Counter(event.role for event in events)
    assert {role: len(records) for role, records in found.items()} == {
        role: wanted[role] for role in INPUT_ROLES
    }
    by_id = {event.record["event_id"]: event for event in events}
    for role, records in found.items():
        for message in records:
            record = schemas.decode(message.value, RECORD_OF_TOPIC[role]).record
            assert record == by_id[record["event_id"]].record
            assert message.key == record["customer_id"].encode("utf-8")
    # A customer's events share a partition, whatever the topic.
    partitions = {(m.key, m.partition) for records in found.values() for m in records}
    assert len(partitions) == len({key for key, _ in partitions})


async def test_paced_by_a_clock_no_event_goes_before_its_time(kafka: Settings) -> None:
    plan = Plan(customers=6, days=4, seed=7102)
    events = list(simulate(plan))
    clock = ManualClock(plan.start)
    early: list[tuple[str, datetime, datetime]] = []
    acknowledged: list[SimEvent] = []
    progressed = asyncio.Event()

    def sent(event: SimEvent) -> None:
        if event.at > clock.now():
            early.append((event.record["event_id"], event.at, clock.now()))
        acknowledged.append(event)
        progressed.set()

    task = asyncio.create_task(produce(kafka, events, clock=clock, on_sent=sent))
    for step in (len(events) // 4, len(events) // 2, len(events) - 1):
        clock.set(events[step].at)
        due = sum(1 for event in events if event.at <= clock.now())
        async with asyncio.timeout(30):
            while len(acknowledged) < due:
                progressed.clear()
                await progressed.wait()
        assert len(acknowledged) == due  # and nothing of later
    assert await asyncio.wait_for(task, 30) == len(events)
    assert early == []
    assert acknowledged == events


async def test_stop_ends_a_paced_run_early_with_what_was_sent_flushed(kafka: Settings) -> None:
    plan = Plan(customers=6, days=4, seed=7103)
    events = list(simulate(plan))
    clock = ManualClock(plan.start)
    assert events[9].at < events[10].at
    clock.set(events[9].at)  # ten events are due; the clock then stands still
    stop = asyncio.Event()
    start = await _offsets(kafka)
    acknowledged: list[SimEvent] = []

    def sent(event: SimEvent) -> None:
        acknowledged.append(event)
        if len(acknowledged) == 10:
            stop.set()

    count = await asyncio.wait_for(produce(kafka, events, clock=clock, on_sent=sent, stop=stop), 30)
    assert count == len(acknowledged) == 10
    found = await _read_since(kafka, start, "sim7103-")
    assert sum(len(records) for records in found.values()) == 10


async def test_rate_caps_and_still_sends_everything(kafka: Settings) -> None:
    events = list(simulate(Plan(customers=3, days=2, seed=7104)))
    assert await produce(kafka, events, rate=500.0) == len(events)


def test_the_command_produces_the_plan_and_says_how_much(kafka: Settings) -> None:
    code = (
        "import argparse, sys\n"
        "from pipeline.config import Settings\n"
        "from pipeline.simulate.cli import add_commands\n"
        "parser = argparse.ArgumentParser(prog='aftercare')\n"
        "add_commands(parser.add_subparsers(required=True))\n"
        "args = parser.parse_args(sys.argv[1:])\n"
        "raise SystemExit(args.handler(Settings.from_env(), args))\n"
    )
    env = {**os.environ, "AFTERCARE_TOPIC_PREFIX": kafka.topic_prefix}
    argv = ["simulate", "--customers", "4", "--days", "3", "--seed", "7105"]
    result = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    total = sum(1 for _ in simulate(Plan(customers=4, days=3, seed=7105)))
    assert result.returncode == 0, result.stderr
    assert f"produced {total:,} events of 4 customers" in result.stdout
    assert f"events {total:,}/{total:,} (100%)" in result.stderr  # progress, as a plain line

    missing = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "AFTERCARE_TOPIC_PREFIX": "no-such-prefix."},
        check=False,
    )
    assert missing.returncode == 1
    assert "run `aftercare topics create`" in missing.stderr
