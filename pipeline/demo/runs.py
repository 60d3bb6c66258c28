"""One folder and one topic prefix per demo run, and tidying up after the runs before.

Each ``aftercare run`` gets a stamp from the wall clock at its start (``20260302T080000Z``), a
folder ``<AFTERCARE_HOME>/runs/<stamp>/`` and, unless ``AFTERCARE_TOPIC_PREFIX`` is set, the topic
prefix ``demo-<stamp>.``. Its worker and senders consumer groups, and the worker's changelog topic,
carry the same prefix, so a second run starts from nothing and counts only its own records.

So that the broker does not fill up, a run deletes the topics of earlier demo runs, recognised by
that prefix alone (no other topic is ever touched), unless the earlier run is still going: its
process is alive, or its consumer groups still have members. Their folders stay (logs, outbox,
report, summary), without the worker state, which is useless once the changelog is gone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.topics import admin_client

DEMO_PREFIX = re.compile(r"^demo-(\d{8}T\d{6}Z(?:-\d+)?)\.")
RUN_FILE = "run.json"


def run_stamp(moment: datetime) -> str:
    """``20260302T080000Z``: sortable, and safe in topic names and paths."""
    if moment.tzinfo is None:
        raise ValueError("a run stamp needs a timezone-aware instant")
    return moment.strftime("%Y%m%dT%H%M%SZ")


def demo_prefix(stamp: str) -> str:
    return f"demo-{stamp}."


def stamp_of_topic(topic: str) -> str | None:
    """The run stamp of a topic (or group) a demo run made, else None."""
    match = DEMO_PREFIX.match(topic)
    return match.group(1) if match else None


@dataclass(frozen=True)
class RunDir:
    """The files of one run."""

    path: Path
    stamp: str

    @classmethod
    def create(cls, home: Path, moment: datetime) -> RunDir:
        """A new folder under ``home/runs``; a second run in the same second gets ``-2``."""
        runs = home / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        base = run_stamp(moment)
        for attempt in range(1, 100):
            stamp = base if attempt == 1 else f"{base}-{attempt}"
            try:
                (runs / stamp).mkdir()
            except FileExistsError:
                continue
            return cls(runs / stamp, stamp)
        raise RuntimeError(f"cannot make a run folder under {runs}: 99 runs started this second")

    @property
    def state(self) -> Path:
        return self.path / "state"

    @property
    def outbox(self) -> Path:
        return self.path / "outbox.sqlite"

    @property
    def report(self) -> Path:
        return self.path / "report"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def children(self) -> Path:
        return self.path / "children.json"

    @property
    def run_file(self) -> Path:
        return self.path / RUN_FILE

    def log(self, name: str) -> Path:
        return self.path / f"{name}.log"

    def write_run_file(self, **fields: Any) -> None:
        self.run_file.write_text(json.dumps({"pid": os.getpid(), **fields}, indent=2) + "\n")


def recorded_clock_factor(home: Path, topic_prefix: str) -> tuple[float, Path] | None:
    """The clock factor of the run whose topics carry ``topic_prefix``, and its run file; None
    when no run under ``home`` made them. ``aftercare report`` shows latencies in real seconds
    with it, without being told the factor again."""
    stamp = stamp_of_topic(topic_prefix)
    candidates = [home / "runs" / stamp / RUN_FILE] if stamp else []
    if not candidates:  # a run given its own prefix: the latest run file that names it
        candidates = sorted((home / "runs").glob(f"*/{RUN_FILE}"), reverse=True)
    for path in candidates:
        try:
            recorded = json.loads(path.read_text())
            factor = float(recorded["clock_factor"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if recorded.get("topic_prefix") == topic_prefix and factor > 0:
            return factor, path
    return None


def run_is_live(folder: Path) -> bool:
    """Whether the ``aftercare run`` that owns ``folder`` is still running."""
    try:
        pid = int(json.loads((folder / RUN_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if pid == os.getpid():
        return True
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel whether the pid exists at all
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return b"pipeline" in command or b"aftercare" in command


async def delete_earlier_runs(settings: Settings, home: Path, current: str) -> list[str]:
    """Delete the topics of earlier demo runs that are over; the topics deleted, sorted."""
    admin = admin_client(settings)
    await admin.start()
    try:
        by_stamp: dict[str, list[str]] = {}
        for topic in await admin.list_topics():
            stamp = stamp_of_topic(topic)
            if stamp is not None and stamp != current:
                by_stamp.setdefault(stamp, []).append(topic)
        if not by_stamp:
            return []
        busy = await _groups_with_members(admin, sorted(by_stamp))
        doomed: list[str] = []
        for stamp, topics in sorted(by_stamp.items()):
            if stamp in busy or run_is_live(home / "runs" / stamp):
                continue
            doomed.extend(topics)
            shutil.rmtree(home / "runs" / stamp / "state", ignore_errors=True)
        if doomed:
            await admin.delete_topics(sorted(doomed))
        return sorted(doomed)
    finally:
        await admin.close()


async def _groups_with_members(admin: Any, stamps: list[str]) -> set[str]:
    """The stamps among ``stamps`` whose consumer groups are not empty right now."""
    groups = [
        str(entry[0])
        for entry in await admin.list_consumer_groups()
        if stamp_of_topic(str(entry[0])) in stamps
    ]
    busy: set[str] = set()
    for group in groups:
        # One group per request, and only its state: aiokafka 0.14 misreads the members of a
        # DescribeGroups answer (the bytes after them are misaligned), which goes unnoticed for
        # the last group of an answer and breaks the decoding of any group after it.
        (response,) = await admin.describe_consumer_groups([group])
        for described in response.to_object().get("groups", []):
            if described.get("state") not in ("Empty", "Dead", ""):
                busy.add(str(stamp_of_topic(group)))
    return busy
