"""``aftercare run`` as a user runs it: a short demo, end to end, and Ctrl-C in the middle of one.

The command runs as a subprocess against the test broker (``KAFKA_BOOTSTRAP_SERVERS``, so it
manages no broker), on topics, ports and a home of its own. What it reports in ``summary.json``
must agree with what is on the ``deliveries`` and ``dispatch`` topics and in the sandbox's outbox,
and nothing it started may outlive it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from tests.integration.kafkatools import end_offsets, read_range
from tests.support import delete_topics_with_prefix, free_ports, settings_for

pytestmark = pytest.mark.integration

STATUS_COLUMNS = {
    "DELIVERED": "delivered",
    "FAILED": "failed",
    "SUPPRESSED": "suppressed",
    "EXPIRED": "expired",
}
SANDBOX_CHANNELS = {
    "EMAIL": "email",
    "SMS": "sms",
    "WHATSAPP": "whatsapp",
    "PUSH": "push",
    "WEBHOOK": "webhook",
}


class DemoProcess:
    """``aftercare run ...`` in a session of its own (as a terminal's foreground job is), with
    its stdout and stderr in files."""

    def __init__(self, settings: Settings, home: Path, args: list[str]) -> None:
        worker, senders, http, smtp = free_ports(4)
        self.home = home
        self.stdout = home.parent / "run.stdout"
        self.stderr = home.parent / "run.stderr"
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "AFTERCARE_TOPIC_PREFIX": settings.topic_prefix,
            "AFTERCARE_INPUT_PARTITIONS": str(settings.input_partitions),
            "AFTERCARE_OUTPUT_PARTITIONS": str(settings.output_partitions),
            "AFTERCARE_HOME": str(home),
            "AFTERCARE_WORKER_PORT": str(worker),
            "AFTERCARE_SENDERS_PORT": str(senders),
            "AFTERCARE_SANDBOX_HTTP_PORT": str(http),
            "AFTERCARE_SANDBOX_SMTP_PORT": str(smtp),
        }
        self.argv = [sys.executable, "-m", "pipeline.cli", "run", *args]
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    async def wait(self, timeout: float) -> int:
        assert self.process is not None
        try:
            async with asyncio.timeout(timeout):
                return await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(
                f"aftercare run did not end in {timeout} s:\n{self.output()}"
            ) from None

    async def wait_for_output(self, text: str, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while text not in self.stderr.read_text(errors="replace"):
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from aftercare run:\n{self.output()}")
            await asyncio.sleep(0.2)

    def run_dir(self) -> Path:
        (folder,) = (self.home / "runs").iterdir()
        return folder

    def output(self) -> str:
        return (
            f"--- stdout\n{self.stdout.read_text(errors='replace')}\n"
            f"--- stderr (last 4000 characters)\n{self.stderr.read_text(errors='replace')[-4000:]}"
        )


@pytest.fixture
async def demo_topics(broker: Settings) -> AsyncIterator[Settings]:
    prefix = f"test-{uuid.uuid4().hex[:8]}."
    settings = settings_for(prefix)
    yield settings
    await delete_topics_with_prefix(settings, prefix)


def _alive(pid: int) -> bool:
    """Whether ``pid`` is (still) one of Aftercare's processes."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"pipeline.cli" in command


def _children_left(run_dir: Path) -> list[str]:
    children = json.loads((run_dir / "children.json").read_text())
    assert set(children) == {"sandbox", "senders", "preferences", "worker"}
    return [name for name, child in children.items() if _alive(child["pid"])]


async def _records(settings: Settings, role: TopicRole) -> list[dict[str, Any]]:
    topic = settings.topic(role)
    schemas = SchemaSet.load()
    messages = await read_range(settings, topic, {}, await end_offsets(settings, topic))
    messages.sort(key=lambda m: (m.partition, m.offset))
    return [schemas.decode(m.value, RECORD_OF_TOPIC[role]).record for m in messages]


def _file(path: str) -> bool:
    return Path(path).is_file()


def _first_by_touchpoint(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    first: dict[str, dict[str, Any]] = {}
    for record in records:
        first.setdefault(record["touchpoint_id"], record)
    return first


async def test_a_short_run_reports_what_the_topics_and_the_outbox_hold(
    demo_topics: Settings, tmp_path: Path
) -> None:
    demo = DemoProcess(
        demo_topics,
        tmp_path / "home",
        ["--customers", "40", "--days", "14", "--minutes", "0.35", "--seed", "7"],
    )
    await demo.start()
    status = await demo.wait(timeout=180)
    assert status == 0, demo.output()
    run_dir = demo.run_dir()
    summary = json.loads((run_dir / "summary.json").read_text())

    assert summary["run"]["topic_prefix"] == demo_topics.topic_prefix
    assert summary["events"]["produced"] == summary["events"]["planned"] > 0
    assert summary["drained"] is True
    assert summary["totals"]["in_flight"] == 0
    # What the worker said of itself (its ready page): every event produced was handled.
    assert sum(summary["worker_events"].values()) >= summary["events"]["produced"]
    assert summary["worker_events"]["used"] > 0
    for status in ("suppressed", "failed", "expired"):  # each breakdown adds up to its column
        assert sum(summary[f"{status}_by_reason"].values()) == summary["totals"][status]

    # The summary against the topics, each touchpoint counted once.
    outcomes = _first_by_touchpoint(await _records(demo_topics, TopicRole.DELIVERIES))
    dispatched = _first_by_touchpoint(await _records(demo_topics, TopicRole.DISPATCH))
    assert outcomes, "the run ended no touchpoint at all"
    expected: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in outcomes.values():
        expected[outcome["journey"]][STATUS_COLUMNS[outcome["status"]]] += 1
    for command in dispatched.values():
        expected[command["journey"]]["dispatched"] += 1
    assert set(dispatched) <= set(outcomes), "a dispatched touchpoint has no outcome"
    for journey, counts in summary["journeys"].items():
        for column in ("dispatched", *STATUS_COLUMNS.values()):
            assert counts[column] == expected[journey][column], (journey, column)
    assert set(summary["journeys"]) == set(expected)
    delivered = Counter(str(o["channel"]) for o in outcomes.values() if o["status"] == "DELIVERED")
    assert summary["delivered_by_channel"] == dict(delivered)

    # The summary against the outbox: each delivered touchpoint accepted once, on its channel.
    with sqlite3.connect(summary["sandbox"]["outbox"]) as outbox:
        rows = outbox.execute(
            "SELECT channel, COUNT(*), COUNT(DISTINCT touchpoint_id) FROM messages GROUP BY channel"
        ).fetchall()
        (accepted_twice,) = outbox.execute(
            "SELECT COUNT(*) FROM (SELECT touchpoint_id FROM messages "
            "GROUP BY touchpoint_id HAVING COUNT(*) > 1)"
        ).fetchone()
    assert accepted_twice == 0
    in_outbox = {channel: messages for channel, messages, _ in rows}
    assert all(messages == distinct for _, messages, distinct in rows)
    for channel, name in SANDBOX_CHANNELS.items():
        assert in_outbox.get(name, 0) == delivered.get(channel, 0), channel
    assert summary["sandbox"]["accepted_by_channel"] == {
        name: in_outbox.get(name, 0) for name in summary["sandbox"]["accepted_by_channel"]
    }

    report = summary["report"]
    missing = [p for p in (report["markdown"], report["html"], *report["charts"]) if not _file(p)]
    assert missing == []
    assert report["html"] in demo.stdout.read_text()

    assert _children_left(run_dir) == []

    # `aftercare report` on the run's topics later finds the run's clock without being told.
    env = {k: v for k, v in demo.env.items() if k != "AFTERCARE_CLOCK_FACTOR"}
    again = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipeline.cli",
        "report",
        "--out",
        str(tmp_path / "again"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(again.communicate(), timeout=120)
    assert again.returncode == 0, err.decode()
    factor = summary["options"]["clock_factor"]
    assert f"clock x{factor:,.0f} (recorded by the run, {run_dir / 'run.json'})" in out.decode()


async def test_ctrl_c_in_the_middle_of_a_run_stops_everything(
    demo_topics: Settings, tmp_path: Path
) -> None:
    demo = DemoProcess(
        demo_topics, tmp_path / "home", ["--customers", "40", "--days", "30", "--minutes", "2"]
    )
    await demo.start()
    # The live view's clock row says "day N of D" once events flow.
    await demo.wait_for_output(", day ", timeout=120)
    run_dir = demo.run_dir()
    assert demo.process is not None
    os.killpg(demo.process.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    status = await demo.wait(timeout=90)
    assert status == 130, demo.output()
    assert _children_left(run_dir) == []
    assert not (run_dir / "summary.json").exists()
