"""Part 4: what a customer costs the worker (disk, memory), and how soon a killed worker is back.

    .venv/bin/python -m bench.state               (100k and 1M customers; BENCH_QUICK=1: 10k, 50k)

For each size, customers with a pending touchpoint are written into the table changelog (see
:mod:`bench.seeding`) and one worker starts on it:

- ``cold_recovery_seconds``: from the worker's start until /health/ready says ready, i.e. the whole
  table recovered from the changelog and the due index rebuilt;
- ``disk_bytes``: the worker's state folder (AFTERCARE_STATE_DIR, RocksDB) then; and
  ``worker_rss_bytes``: its resident memory (VmRSS);
- ``recovery_seconds``: SIGKILL the worker, start it again on the same state folder, and time
  until it is ready to process again (it rejoins the group once the killed member's session has
  expired, AFTERCARE_SESSION_TIMEOUT_SECONDS, and reads only the changelog's tail).

Within ``make bench`` the 1M figures come from the timers part's worker (:mod:`bench.timers`).
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.common import (
    PARTITIONS,
    Scratch,
    Stopwatch,
    cores,
    dir_bytes,
    ensure_broker,
    process_rss,
    quick,
    write_part,
)
from bench.seeding import Plan, StateMaker, create_changelog, spread, values, write
from pipeline.topics import ensure_topics
from tests.integration.processes import ComponentProcess

SIZES = (100_000, 1_000_000)
QUICK_SIZES = (10_000, 50_000)
READY_TIMEOUT_SECONDS = 900.0


class SeededWorker:
    """One worker on a changelog written for it: write, start (cold recovery), measure,
    SIGKILL and restart. ``await close()`` removes its topics and state."""

    def __init__(self, part: str) -> None:
        self.scratch = Scratch(part)
        self.settings = self.scratch.settings
        self.maker = StateMaker()
        self.worker: ComponentProcess = self.scratch.worker()
        self.state_dir = self.scratch.folder / "worker"
        self.topic = ""
        self.customers = 0
        self.value_bytes = 0
        self.write_seconds = 0.0
        self.rng = random.Random(11)

    async def prepare(self) -> None:
        await ensure_topics(self.settings)
        self.topic = await create_changelog(self.settings, PARTITIONS)

    async def write(self, plan: Plan) -> None:
        clock = Stopwatch()
        count, size = await write(
            self.settings, self.topic, PARTITIONS, values(self.maker, plan, self.rng)
        )
        self.write_seconds += clock()
        self.customers += count
        self.value_bytes += size

    def far_future(self, customers: int, first: int = 0) -> Plan:
        """Customers due between 2 h and 46 h from now: nothing fires during the run."""
        now = datetime.now(UTC)
        return spread(first, customers, now + timedelta(hours=2), now + timedelta(hours=46), 64)

    async def start(self, timeout: float = READY_TIMEOUT_SECONDS) -> float:
        """Start the worker; seconds until it is ready."""
        clock = Stopwatch()
        self.worker.start()
        await self.worker.wait_ready(timeout)
        return clock()

    async def kill_and_restart(self, timeout: float = READY_TIMEOUT_SECONDS) -> float:
        """SIGKILL, start again on the same state; seconds from the restart until ready."""
        self.worker.kill()
        return await self.start(timeout)

    async def index_size(self) -> int:
        """Customers with something pending, as the worker's readiness page counts them."""
        url = f"http://127.0.0.1:{self.worker.port}/health/ready"
        async with httpx.AsyncClient() as client:
            answer = await client.get(url)
        return int(answer.json().get("customers_due_later", 0))

    def rss(self) -> int:
        return process_rss(self.worker)

    def disk(self) -> int:
        return dir_bytes(self.state_dir)

    async def close(self) -> None:
        await self.scratch.cleanup()


async def measure(customers: int) -> dict[str, Any]:
    """Part 4's figures for ``customers`` customers with a pending touchpoint each."""
    seeded = SeededWorker("state")
    try:
        await seeded.prepare()
        await seeded.write(seeded.far_future(customers))
        cold = await seeded.start()
        figures = {
            "customers": seeded.customers,
            "pending_touchpoints": seeded.customers * seeded.maker.pending_per_customer,
            "value_bytes_per_customer": round(seeded.value_bytes / seeded.customers),
            "changelog_write_seconds": round(seeded.write_seconds, 2),
            "cold_recovery_seconds": round(cold, 2),
            "index_size": await seeded.index_size(),
            "disk_bytes": seeded.disk(),
            "worker_rss_bytes": seeded.rss(),
        }
        figures["recovery_seconds"] = round(await seeded.kill_and_restart(), 2)
        figures["worker_rss_bytes_after_restart"] = seeded.rss()
        figures["disk_bytes_after_restart"] = seeded.disk()
        figures["disk_bytes_per_customer"] = round(figures["disk_bytes"] / customers)
        figures["worker_rss_bytes_per_customer"] = round(figures["worker_rss_bytes"] / customers)
        figures["shortcut"] = seeded.maker.shortcut
        return figures
    finally:
        await seeded.close()


def size_name(customers: int) -> str:
    if customers % 1_000_000 == 0:
        return f"{customers // 1_000_000}m"
    if customers % 1000 == 0:
        return f"{customers // 1000}k"
    return str(customers)


def marginal(small: dict[str, Any], large: dict[str, Any], key: str) -> float | None:
    """What one more customer adds to ``key``, between two sizes."""
    extra = large["customers"] - small["customers"]
    if extra <= 0:
        return None
    return round((large[key] - small[key]) / extra, 1)


async def run(short: bool | None = None, sizes: tuple[int, ...] | None = None) -> dict[str, Any]:
    short = quick() if short is None else short
    ensure_broker()
    figures: dict[str, Any] = {}
    measured = []
    for customers in sizes or (QUICK_SIZES if short else SIZES):
        result = await measure(customers)
        measured.append(result)
        name = size_name(customers)
        figures.update({f"state_{key}_at_{name}": value for key, value in result.items()})
    if len(measured) > 1:
        for key in ("worker_rss_bytes", "disk_bytes"):
            figures[f"state_{key}_per_customer_marginal"] = marginal(measured[0], measured[-1], key)
    figures["cores"] = cores()
    return figures


def main() -> None:
    write_part("state", asyncio.run(run()))


if __name__ == "__main__":
    main()
