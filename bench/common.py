"""What the benchmark parts share: unique topics and state, the worker as a process, its memory and
disk, consumer-group offsets, percentiles, and writing a part's figures.

Every part works on topics named with its own prefix (``bench-<part>-<random>.``) and its own
temporary state folder, and deletes both when it ends, however it ends. The broker is never
stopped: other work may be using it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pipeline import localkafka
from pipeline.config import Settings
from pipeline.topics import admin_client
from tests.integration.processes import ComponentProcess
from tests.support import delete_topics_with_prefix, free_ports, settings_for

RESULTS = Path(__file__).with_name("results")
PARTITIONS = 4  # of every input topic (and so of the worker's table and its changelog)
OUTPUT_PARTITIONS = 2


def quick() -> bool:
    """BENCH_QUICK=1: a short smoke run with small sizes (figures of no value)."""
    return os.environ.get("BENCH_QUICK", "").strip() not in ("", "0", "false", "no")


def cores() -> int:
    return os.cpu_count() or 0


class Scratch:
    """One part's topics (a unique prefix) and temporary folder; ``await cleanup()`` removes
    both (and stops any process registered with :meth:`track`)."""

    def __init__(self, part: str, **overrides: str) -> None:
        self.prefix = f"bench-{part}-{uuid.uuid4().hex[:6]}."
        self.env = {
            "AFTERCARE_TOPIC_PREFIX": self.prefix,
            "AFTERCARE_INPUT_PARTITIONS": str(PARTITIONS),
            "AFTERCARE_OUTPUT_PARTITIONS": str(OUTPUT_PARTITIONS),
            **overrides,
        }
        self.settings = settings_for(self.prefix, **self.env)
        self.folder = Path(tempfile.mkdtemp(prefix=f"aftercare-bench-{part}-"))
        self.processes: list[ComponentProcess] = []

    def track(self, process: ComponentProcess) -> ComponentProcess:
        self.processes.append(process)
        return process

    def worker(self, name: str = "worker", **env: str) -> ComponentProcess:
        """A worker process on this scratch's topics, with its own state folder and port."""
        (port,) = free_ports(1)
        state_dir = self.folder / name
        return self.track(
            ComponentProcess(
                "worker",
                {
                    **self.env,
                    "AFTERCARE_STATE_DIR": str(state_dir),
                    "AFTERCARE_WORKER_PORT": str(port),
                    "AFTERCARE_LOG_LEVEL": "warning",
                    **env,
                },
                self.folder / f"{name}.log",
                port,
            )
        )

    async def cleanup(self) -> None:
        for process in self.processes:
            if process.process is not None and process.process.poll() is None:
                process.kill()  # the state goes with the folder: nothing to shut down cleanly
        if os.environ.get("BENCH_KEEP_LOGS"):
            kept = RESULTS / "logs" / self.prefix.rstrip(".")
            kept.mkdir(parents=True, exist_ok=True)
            for log in self.folder.glob("*.log"):
                shutil.copy(log, kept / log.name)
        try:
            await delete_topics_with_prefix(self.settings, self.prefix)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def ensure_broker() -> None:
    """The local broker must run (it is started if it does not; it is never stopped here)."""
    settings = Settings.from_env()
    if settings.uses_local_broker:
        localkafka.start(settings.local_broker)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for process {pid}")


def process_rss(process: ComponentProcess) -> int:
    assert process.process is not None
    return rss_bytes(process.process.pid)


def dir_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (what ``du -b`` counts, without directories)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            # RocksDB may remove a file (a compaction) while we look.
            with contextlib.suppress(FileNotFoundError):
                total += (Path(folder) / name).stat().st_size
    return total


class Offsets:
    """One admin client and one consumer, kept open, for repeated offset questions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.admin: AIOKafkaAdminClient = admin_client(settings)
        self.consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs())

    async def __aenter__(self) -> Offsets:
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        described = await self.admin.describe_topics(list(topics))
        return [
            TopicPartition(topic["topic"], p["partition"])
            for topic in described
            for p in topic["partitions"]
        ]

    async def end(self, topics: Iterable[str]) -> int:
        """Records in ``topics`` (the sum of their end offsets)."""
        ends = await self.consumer.end_offsets(await self.partitions(topics))
        return int(sum(ends.values()))

    async def committed(self, group: str, topics: Iterable[str]) -> int:
        """The sum of ``group``'s committed offsets on ``topics``."""
        wanted = set(topics)
        offsets = await self.admin.list_consumer_group_offsets(group)
        return sum(
            meta.offset for tp, meta in offsets.items() if tp.topic in wanted and meta.offset > 0
        )


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, nearest rank."""
    if not ordered:
        return math.nan
    rank = max(math.ceil(q * len(ordered)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


def rounded(value: float, digits: int = 1) -> float | None:
    return None if math.isnan(value) else round(value, digits)


def write_part(name: str, figures: Mapping[str, Any]) -> None:
    """Print a part's figures and keep them in bench/results/<name>.json (when run alone)."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print_figures(figures)


def print_figures(figures: Mapping[str, Any], out: Any = sys.stdout) -> None:
    width = max((len(key) for key in figures), default=0)
    for key, value in figures.items():
        shown = f"{value:,}" if isinstance(value, int | float) else str(value)
        print(f"{key:{width}}  {shown:>14}", file=out)


class Stopwatch:
    """Seconds since it was made (monotonic)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.started
