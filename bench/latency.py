"""Part 2: end-to-end latency, event produced -> message accepted by the provider sandbox.

    .venv/bin/python -m bench.latency             (BENCH_QUICK=1 for a smoke run)

The sandbox (``aftercare sandbox serve``), a worker and the senders run as their own processes;
this process only produces and reads the sandbox's outbox. Each event is an ORDER_PLACED of a new
customer with an email address, so each starts ``order_confirmation`` at once: one email, matched
to its event by the recipient address (one per customer). Latency is the outbox's accept time
(``received_at``) minus the wall time just before the event was handed to the producer.

For each rate a fresh worker and senders on fresh topics (so that a backlog left by one rate does
not spill into the next) take a short warm-up, then events are produced at the rate for the
window. Afterwards the harness waits up to the drain time for the last messages. Percentiles
count a message not accepted by then as infinitely late: a percentile that falls among those is
null, and the achieved rates and the lag say what happened instead.

The senders' per-provider rate limit is raised out of the way (AFTERCARE_SENDER_RATE_PER_SECOND)
and they keep SMTP_POOL_SIZE connections to the sandbox; everything else is the default.
"""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench import profile
from bench.common import (
    Scratch,
    Stopwatch,
    cores,
    ensure_broker,
    percentile,
    quick,
    rounded,
    write_part,
)
from pipeline import localkafka
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.sandbox.server import SandboxConfig
from pipeline.topics import ensure_topics
from tests.integration.processes import ComponentProcess
from tests.support import free_ports

RATES = (50, 100, 200, 500, 1000)
KNEE_P99_MS = 200.0  # the knee: the highest rate whose p99 stays under this
WINDOW_SECONDS = 15.0
DRAIN_SECONDS = 15.0
QUICK_WINDOW_SECONDS = 3.0
QUICK_DRAIN_SECONDS = 5.0
WARMUP_EVENTS = 100
WARMUP_RATE = 50.0
SMTP_POOL_SIZE = 16
PURCHASE = RECORD_OF_TOPIC[TopicRole.PURCHASES]


def order_placed(customer: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": f"{customer}-placed",
        "customer_id": customer,
        "occurred_at": at,
        "type": "ORDER_PLACED",
        "order_id": f"order-{customer}",
        "items": [
            {
                "sku": "SKU-1",
                "name": "Espresso machine",
                "category": "coffee-machines",
                "quantity": 1,
                "unit_price_minor": 49900,
            }
        ],
        "total_minor": 49900,
        "currency": "EUR",
        "contact": {"email": address(customer), "phone": None, "locale": None, "timezone": None},
        "reason": None,
    }


def address(customer: str) -> str:
    return f"{customer}@example.org"


class Outbox:
    """Reads the sandbox's SQLite outbox as it fills: recipient -> accept time (wall)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.accepted: dict[str, float] = {}
        self._last_id = 0
        self._db: sqlite3.Connection | None = None

    def poll(self) -> int:
        if self._db is None:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        rows = self._db.execute(
            "SELECT id, recipient, received_at FROM messages WHERE id > ? ORDER BY id",
            (self._last_id,),
        ).fetchall()
        for number, recipient, received_at in rows:
            self.accepted.setdefault(recipient, received_at)
            self._last_id = number
        return len(rows)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    async def wait_for(self, recipients: Mapping[str, float], seconds: float) -> float | None:
        """Until every recipient has a message (seconds it took) or ``seconds`` pass (None)."""
        clock = Stopwatch()
        while clock() < seconds:
            self.poll()
            if all(r in self.accepted for r in recipients):
                return clock()
            await asyncio.sleep(0.1)
        return None


async def produce_at(
    producer: AIOKafkaProducer, topic: str, prefix: str, rate: float, seconds: float, outbox: Outbox
) -> tuple[dict[str, float], float]:
    """ORDER_PLACED events for new customers at ``rate`` a second for ``seconds``; the wall time
    each was handed to the producer, by recipient, and how long producing took."""
    schemas = SchemaSet.load()
    total = int(rate * seconds)
    sent: dict[str, float] = {}
    clock = Stopwatch()
    last_poll = 0.0
    n = 0
    while n < total:
        due = min(int(clock() * rate) + 1, total)
        while n < due:
            customer = f"{prefix}{n:07d}"
            now = time.time()
            record = order_placed(customer, datetime.fromtimestamp(now, UTC))
            value = schemas.encode(PURCHASE, record)
            await producer.send(topic, value=value, key=customer.encode())
            sent[address(customer)] = now
            n += 1
        if clock() - last_poll >= 0.5:
            last_poll = clock()
            outbox.poll()  # as we go, so that the window's acceptance rate can be told
        await asyncio.sleep(0.002)
    elapsed = clock()
    await producer.flush()
    return sent, elapsed


def latency_figures(
    rate: int,
    sent: Mapping[str, float],
    accepted: Mapping[str, float],
    window: tuple[float, float],
    waited_until: float,
    drained: float | None,
) -> dict[str, Any]:
    """Percentiles over every event produced in the window. A message not accepted by
    ``waited_until`` counts as late by the time waited for it. A percentile is then exact only if
    every such message had waited longer than it; the others are lower bounds, named in
    ``e2e_lower_bounds_at_<rate>``."""
    start, end = window
    delays = sorted((accepted.get(r, waited_until) - t) * 1000 for r, t in sent.items())
    done = sorted((accepted[r] - t) * 1000 for r, t in sent.items() if r in accepted)
    missing = len(sent) - len(done)
    # The shortest wait of a message never accepted: a percentile at or above it may be higher.
    censored = min(
        ((waited_until - t) * 1000 for r, t in sent.items() if r not in accepted),
        default=math.inf,
    )
    quantiles = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
    lower_bounds = [name for name, q in quantiles.items() if percentile(delays, q) >= censored]
    in_window = sum(1 for r in sent if r in accepted and accepted[r] <= end)
    last = max((accepted[r] for r in sent if r in accepted), default=start)
    return {
        **{
            f"e2e_{name}_ms_at_{rate}": rounded(percentile(delays, q))
            for name, q in quantiles.items()
        },
        f"e2e_max_accepted_ms_at_{rate}": rounded(done[-1]) if done else None,
        f"e2e_lower_bounds_at_{rate}": lower_bounds,
        f"e2e_events_at_{rate}": len(sent),
        f"e2e_produced_per_s_at_{rate}": round(len(sent) / (end - start)),
        f"e2e_accepted_per_s_in_window_at_{rate}": round(in_window / (end - start)),
        f"e2e_accepted_per_s_overall_at_{rate}": round(len(done) / max(last - start, 1e-3)),
        f"e2e_lag_at_window_end_at_{rate}": len(sent) - in_window,
        f"e2e_unaccepted_at_{rate}": missing,
        f"e2e_drain_seconds_at_{rate}": None if drained is None else round(drained, 2),
    }


def knee(figures: Mapping[str, Any], rates: tuple[int, ...]) -> int:
    """The highest rate, of those measured, whose p99 was under ``KNEE_P99_MS`` (an exact p99,
    not a lower bound) with every lower rate under it too; 0 if the lowest was not."""
    best = 0
    for rate in sorted(rates):
        p99 = figures.get(f"e2e_p99_ms_at_{rate}")
        bounded = "p99" in (figures.get(f"e2e_lower_bounds_at_{rate}") or ())
        if p99 is None or bounded or p99 >= KNEE_P99_MS:
            break
        best = rate
    return best


def cpu_used(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds each process has used so far (one that is gone counts as nothing more)."""
    used = {}
    for name, pid in pids.items():
        try:
            used[name] = profile.cpu_seconds(pid)
        except OSError:
            used[name] = math.nan
    return used


def cpu_figures(
    rate: int, before: Mapping[str, float], after: Mapping[str, float], events: int
) -> dict[str, Any]:
    """CPU ms per event of each process between ``before`` and ``after``, and their sum: what
    one event costs the machine along the whole path."""
    figures: dict[str, Any] = {}
    total = 0.0
    for name, start in before.items():
        spent = after.get(name, math.nan) - start
        if math.isnan(spent):
            continue
        total += spent
        figures[f"e2e_cpu_ms_per_event_{name}_at_{rate}"] = round(spent / max(events, 1) * 1e3, 3)
    figures[f"e2e_cpu_ms_per_event_at_{rate}"] = round(total / max(events, 1) * 1e3, 3)
    return figures


def broker_pids(settings: Settings) -> dict[str, int]:
    """The local broker's node processes, if the broker is the embedded one."""
    if not settings.uses_local_broker:
        return {}
    nodes = localkafka.status(settings.local_broker).nodes
    return {"broker" if len(nodes) == 1 else f"broker{n.node}": n.pid for n in nodes if n.pid}


def sandbox_process(folder: Path) -> tuple[ComponentProcess, SandboxConfig]:
    http_port, smtp_port = free_ports(2)
    config = SandboxConfig(http_port=http_port, smtp_port=smtp_port, db_path=folder / "outbox.db")
    process = ComponentProcess(
        "sandbox",
        {
            "AFTERCARE_SANDBOX_HTTP_PORT": str(http_port),
            "AFTERCARE_SANDBOX_SMTP_PORT": str(smtp_port),
            "AFTERCARE_SANDBOX_DB": str(config.db_path),
            "AFTERCARE_LOG_LEVEL": "warning",
        },
        folder / "sandbox.log",
        http_port,
        argv=[sys.executable, "-m", "pipeline.cli", "sandbox", "serve"],
        ready_path="/_sandbox/health",
    )
    return process, config


def senders_env(config: SandboxConfig) -> dict[str, str]:
    http = f"http://127.0.0.1:{config.http_port}"
    return {
        "AFTERCARE_SMTP_PORT": str(config.smtp_port),
        "AFTERCARE_SMTP_USERNAME": config.smtp_username,
        "AFTERCARE_SMTP_PASSWORD": config.smtp_password,
        "AFTERCARE_SMTP_POOL_SIZE": str(SMTP_POOL_SIZE),
        "AFTERCARE_SMS_BASE_URL": f"{http}/twilio",
        "AFTERCARE_WHATSAPP_BASE_URL": f"{http}/whatsapp",
        "AFTERCARE_PUSH_BASE_URL": f"{http}/fcm",
        "AFTERCARE_WEBHOOK_URL": f"{http}/webhook/support",
        "AFTERCARE_SENDER_RATE_PER_SECOND": "100000",
        "AFTERCARE_LOG_LEVEL": "warning",
    }


async def one_rate(
    rate: int,
    config: SandboxConfig,
    outbox: Outbox,
    window: float,
    drain: float,
    pids: Mapping[str, int],
) -> dict[str, Any]:
    """``pids``: the processes besides this rate's worker and senders whose CPU is counted."""
    scratch = Scratch("lat")
    try:
        settings = scratch.settings
        await ensure_topics(settings)
        worker = scratch.worker()
        (senders_port,) = free_ports(1)
        senders = scratch.track(
            ComponentProcess(
                "senders",
                {**scratch.env, **senders_env(config), "AFTERCARE_SENDERS_PORT": str(senders_port)},
                scratch.folder / "senders.log",
                senders_port,
            )
        )
        worker.start()
        senders.start()
        await asyncio.gather(worker.wait_ready(), senders.wait_ready())
        topic = settings.topic(TopicRole.PURCHASES)
        producer = AIOKafkaProducer(acks="all", linger_ms=1, **settings.kafka_client_kwargs())
        await producer.start()
        try:
            # Warm-up: connections open, code paths warm; every message through before timing.
            warm, _ = await produce_at(
                producer, topic, f"w{rate}-", WARMUP_RATE, WARMUP_EVENTS / WARMUP_RATE, outbox
            )
            if await outbox.wait_for(warm, 60.0) is None:
                raise RuntimeError(
                    f"warm-up messages did not reach the sandbox within 60 s\n"
                    f"worker:\n{worker.tail(20)}\nsenders:\n{senders.tail(20)}"
                )
            assert worker.process is not None
            assert senders.process is not None
            counted = {
                **pids,
                "worker": worker.process.pid,
                "senders": senders.process.pid,
            }
            cpu_before = cpu_used(counted)
            started = time.time()
            sent, seconds = await produce_at(producer, topic, f"l{rate}-", rate, window, outbox)
            ended = started + seconds
        finally:
            await producer.stop()
        drained = await outbox.wait_for(sent, drain)
        cpu_after = cpu_used(counted)
        return {
            **latency_figures(rate, sent, outbox.accepted, (started, ended), time.time(), drained),
            **cpu_figures(rate, cpu_before, cpu_after, len(sent)),
        }
    finally:
        await scratch.cleanup()


async def run(short: bool | None = None, rates: tuple[int, ...] = RATES) -> dict[str, Any]:
    short = quick() if short is None else short
    ensure_broker()
    window = QUICK_WINDOW_SECONDS if short else WINDOW_SECONDS
    drain = QUICK_DRAIN_SECONDS if short else DRAIN_SECONDS
    scratch = Scratch("lat-sandbox")
    sandbox, config = sandbox_process(scratch.folder)
    scratch.track(sandbox)
    outbox = Outbox(Path(config.db_path))
    figures: dict[str, Any] = {
        "e2e_window_seconds": window,
        "e2e_drain_seconds": drain,
        "e2e_smtp_pool_size": SMTP_POOL_SIZE,
    }
    try:
        sandbox.start()
        await sandbox.wait_ready()
        assert sandbox.process is not None
        pids = {
            "sandbox": sandbox.process.pid,
            "harness": os.getpid(),  # producing the events and reading the outbox
            **broker_pids(Settings.from_env()),
        }
        for rate in rates:
            try:
                figures.update(await one_rate(rate, config, outbox, window, drain, pids))
            except Exception as exc:  # the other rates still run
                figures[f"latency_error_at_{rate}"] = f"{type(exc).__name__}: {exc}"[:500]
        figures["e2e_knee_per_s"] = knee(figures, rates)
        figures["cores"] = cores()
    finally:
        outbox.close()
        await scratch.cleanup()
    return figures


def main() -> None:
    write_part("latency", asyncio.run(run()))


if __name__ == "__main__":
    main()
