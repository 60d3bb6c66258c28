"""Part 3: a million pending touchpoints in one worker, and how late the due ones fire.

    .venv/bin/python -m bench.timers              (BENCH_QUICK=1 for a smoke run)

Customers with a pending touchpoint are written into the worker's table changelog (see
:mod:`bench.seeding`): most due hours to days from now, and bursts of ``BURST_SIZE`` customers
due together every ``BURST_EVERY_SECONDS``. The worker starts on it (real clock) and recovers the
table (``timer_recovery_seconds``, memory after it). Then it is SIGKILLed and started again on the
same state (``recovery_seconds``), this time on a clock that puts the first burst ``LEAD_SECONDS``
after the restart; it keeps real speed (factor 1), so lateness is in real seconds. The restart is
what places the bursts after the worker is ready without guessing how long a million take to
recover.

Lateness of a touchpoint = its dispatch record's ``occurred_at`` (the worker's decision time) minus
its ``due_at``. Bursts that came due before the restarted worker was ready are counted apart
(``timer_bursts_due_before_ready``) and left out of the percentiles.

Sized to the time it is given: from a smaller calibration run (part 4's 100k, or one of its own
when run alone) it predicts how long writing and recovering take, and measures the largest count up
to a million that fits; ``timer_pending`` is the real number.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench import profile, state
from bench.common import Offsets, Stopwatch, cores, ensure_broker, percentile, quick, write_part
from bench.seeding import Plan
from bench.state import SeededWorker
from pipeline.codec import SchemaSet
from pipeline.names import RECORD_OF_TOPIC, TopicRole

CUSTOMERS = 1_000_000
QUICK_CUSTOMERS = 50_000
CALIBRATION = 100_000
QUICK_CALIBRATION = 10_000
BURSTS, BURST_SIZE, BURST_EVERY_SECONDS = 12, 3000, 5.0
QUICK_BURSTS, QUICK_BURST_SIZE, QUICK_BURST_EVERY_SECONDS = 3, 500, 3.0
LEAD_SECONDS = 20.0  # from the restart to the first burst, at least
DRAIN_SECONDS = 60.0  # after the last burst is due, the longest to wait for its dispatches
QUICK_DRAIN_SECONDS = 20.0
RESTART_TIMEOUT = 180.0
SAFETY = 1.03  # on the predicted recovery (it grew linearly from 100k to 950k), for sizing
OVERHEAD_SECONDS = 15.0  # starting, reading dispatch, deleting topics and state


def predict_seconds(customers: int, calibration: dict[str, Any], bursts: float) -> float:
    """How long a run with ``customers`` should take, from a calibration run's figures."""
    scale = customers / calibration["customers"]
    return (
        SAFETY
        * (
            calibration["changelog_write_seconds"] * scale
            + calibration["cold_recovery_seconds"] * scale
            + calibration["recovery_seconds"]
            + bursts
        )
        + 20.0
    )  # starting, reading dispatch, deleting topics and state


def fitting(wanted: int, calibration: dict[str, Any], bursts: float, budget: float) -> int:
    """The largest count up to ``wanted`` (in steps of 50,000) predicted to fit ``budget``."""
    if predict_seconds(wanted, calibration, bursts) <= budget:
        return wanted
    customers = wanted
    while customers > 50_000 and predict_seconds(customers, calibration, bursts) > budget:
        customers -= 50_000
    return customers


async def dispatched_lateness(seeded: SeededWorker, wanted: set[str]) -> list[float]:
    """Seconds from due to decision of every dispatch record of ``wanted`` customers."""
    return [
        (record["occurred_at"] - record["due_at"]).total_seconds()
        for record, _ in await read_topic(seeded, TopicRole.DISPATCH, wanted)
    ]


async def notice_lateness(
    seeded: SeededWorker, wanted: set[str], real_minus_clock: float
) -> list[float]:
    """Seconds from due to the due-notice of each of ``wanted`` customers being sent (its record's
    timestamp, real time, taken back to the worker's clock): the part of the lateness before the
    notice goes to the broker. The first notice of each, as a resend would be much later."""
    first: dict[str, float] = {}
    for record, sent_ms in await read_topic(seeded, TopicRole.DUE_NOTICES, wanted):
        late = sent_ms / 1000 - real_minus_clock - record["occurred_at"].timestamp()
        first[record["customer_id"]] = min(late, first.get(record["customer_id"], late))
    return list(first.values())


async def read_topic(
    seeded: SeededWorker, role: TopicRole, wanted: set[str]
) -> list[tuple[dict[str, Any], int]]:
    """Every record of ``role``'s topic for ``wanted`` customers, with its timestamp (ms)."""
    settings = seeded.settings
    topic = settings.topic(role)
    schemas = SchemaSet.load()
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, auto_offset_reset="earliest", **settings.kafka_client_kwargs()
    )
    await consumer.start()
    found: list[tuple[dict[str, Any], int]] = []
    try:
        async with Offsets(settings) as offsets:
            parts = await offsets.partitions([topic])
        ends = await consumer.end_offsets(parts)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        remaining = {tp for tp in parts if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batches.items():
                for message in messages:
                    record = schemas.decode(message.value, RECORD_OF_TOPIC[role]).record
                    if record["customer_id"] in wanted:
                        found.append((record, message.timestamp))
                if tp in remaining and await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return found


async def run(
    short: bool | None = None,
    customers: int | None = None,
    calibration: dict[str, Any] | None = None,
    budget_seconds: float | None = None,
) -> dict[str, Any]:
    """Part 3 (and part 4's figures at this size). ``calibration``: :func:`bench.state.measure`
    figures of a smaller run; measured here first when not given."""
    short = quick() if short is None else short
    ensure_broker()
    figures: dict[str, Any] = {}
    clock = Stopwatch()
    if calibration is None:
        calibration = await state.measure(QUICK_CALIBRATION if short else CALIBRATION)
        figures.update({f"calibration_{key}": value for key, value in calibration.items()})
    wanted = customers or (QUICK_CUSTOMERS if short else CUSTOMERS)
    bursts, size, every = (
        (QUICK_BURSTS, QUICK_BURST_SIZE, QUICK_BURST_EVERY_SECONDS)
        if short
        else (BURSTS, BURST_SIZE, BURST_EVERY_SECONDS)
    )
    drain = QUICK_DRAIN_SECONDS if short else DRAIN_SECONDS
    lead = max(LEAD_SECONDS, 1.5 * calibration["recovery_seconds"] + 5.0)
    burst_seconds = lead + bursts * every + 10.0
    count = wanted
    if budget_seconds is not None:
        count = fitting(wanted, calibration, burst_seconds, budget_seconds - clock())
        figures["timer_budget_seconds"] = round(budget_seconds)
    figures["timer_customers_wanted"] = wanted
    figures["timer_predicted_seconds"] = round(predict_seconds(count, calibration, burst_seconds))
    if count < wanted:
        figures["timer_note"] = (
            f"{wanted:,} customers were predicted to take longer than the time left; "
            f"measured {count:,}"
        )

    seeded = SeededWorker("timers")
    try:
        await seeded.prepare()
        bulk = count - bursts * size
        await seeded.write(seeded.far_future(bulk))
        # The bursts, at simulated instants an hour from now; the restarted worker's clock puts
        # the first one `lead` seconds after its start.
        first_due = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        burst_plan = Plan(
            bulk, tuple((first_due + timedelta(seconds=k * every), size) for k in range(bursts))
        )
        await seeded.write(burst_plan)
        figures["timer_pending"] = seeded.customers * seeded.maker.pending_per_customer
        figures["timer_customers"] = seeded.customers
        figures["timer_value_bytes_per_customer"] = round(seeded.value_bytes / seeded.customers)
        figures["timer_changelog_write_seconds"] = round(seeded.write_seconds, 2)

        left = None if budget_seconds is None else budget_seconds - clock()
        timeout = state.READY_TIMEOUT_SECONDS if left is None else max(left - burst_seconds, 60.0)
        try:
            figures["timer_recovery_seconds"] = round(await seeded.start(timeout), 2)
        except AssertionError:  # not ready in time (or it died): say so, and stop here
            figures["timer_note"] = (
                f"the worker did not recover {seeded.customers:,} customers within {timeout:.0f} s"
            )
            figures["timer_worker_log_tail"] = seeded.worker.tail(5)
            return figures
        figures["timer_index_size"] = await seeded.index_size()
        figures["timer_worker_rss_bytes"] = seeded.rss()
        figures["timer_state_disk_bytes"] = seeded.disk()

        # SIGKILL, and back on the clock that brings the bursts.
        epoch = time.time() + lead
        seeded.worker.env.update(
            AFTERCARE_CLOCK_FACTOR="1",
            AFTERCARE_CLOCK_START=first_due.isoformat(),
            AFTERCARE_CLOCK_EPOCH=f"{epoch:.3f}",
        )
        figures["recovery_seconds"] = round(await seeded.kill_and_restart(RESTART_TIMEOUT), 2)
        ready_at = time.time()
        assert seeded.worker.process is not None
        pid = seeded.worker.process.pid
        cpu_before = profile.cpu_seconds(pid)
        spy = await profile.Profile.attach(pid, RESTART_TIMEOUT + bursts * every + drain)
        figures["timer_worker_rss_bytes_after_restart"] = seeded.rss()
        early = sum(1 for k in range(bursts) if epoch + k * every < ready_at)
        figures["timer_bursts_due_before_ready"] = early

        last_due = epoch + (bursts - 1) * every
        wanted_ids = {
            f"cust-{n:07d}"
            for k, (_, numbers) in enumerate(burst_plan.numbered())
            if k >= early
            for n in numbers
        }
        pending = seeded.maker.pending_per_customer
        expected = (bursts - early) * size * pending
        dispatch = seeded.settings.topic(TopicRole.DISPATCH)
        async with Offsets(seeded.settings) as offsets:
            while time.time() < last_due + drain:
                done = await offsets.end([dispatch])
                if time.time() > last_due and done >= bursts * size * pending:
                    break
                await asyncio.sleep(0.5)
        cpu = profile.cpu_seconds(pid) - cpu_before
        samples = await spy.stop()
        lateness = sorted(await dispatched_lateness(seeded, wanted_ids))
        sent = sorted(await notice_lateness(seeded, wanted_ids, epoch - first_due.timestamp()))
        figures.update(wake_layers(samples, spy.error, cpu, len(lateness)))
        figures["timer_worker_rss_bytes_end"] = seeded.rss()
        figures["timer_bursts"] = bursts
        figures["timer_burst_size"] = size
        figures["timer_burst_every_seconds"] = every
        figures["timer_due_in_bursts"] = expected
        figures["timer_fired"] = len(lateness)
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)):
            value = percentile(lateness, q)
            figures[f"timer_lateness_{name}_s"] = None if math.isnan(value) else round(value, 3)
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            value = percentile(sent, q)
            figures[f"timer_notice_sent_{name}_s"] = None if math.isnan(value) else round(value, 3)
        figures["timer_state_disk_bytes_per_customer"] = round(
            figures["timer_state_disk_bytes"] / seeded.customers
        )
        figures["timer_worker_rss_bytes_per_customer"] = round(
            figures["timer_worker_rss_bytes"] / seeded.customers
        )
        figures["timer_shortcut"] = seeded.maker.shortcut
    except Exception as exc:  # keep what was measured before it
        figures["timers_error"] = f"{type(exc).__name__}: {exc}"[:500]
        if seeded.worker.process is not None:
            figures["timer_worker_log_tail"] = seeded.worker.tail(5)
    finally:
        await seeded.close()
    figures["cores"] = cores()
    return figures


def wake_layers(
    samples: profile.Samples, error: str | None, cpu: float, wakes: int
) -> dict[str, Any]:
    """CPU µs per wake of each layer, over the bursts: from the restart to the last dispatch (the
    due-notice loop, the notices' round trip and the quiet seconds between bursts included)."""
    if error is not None:
        return {"timer_layer_error": error}
    keep = os.environ.get("BENCH_PROFILE_OUT")  # the raw stacks, for a flame graph
    if keep:
        Path(f"{keep}.timers").write_text("".join(f"{s} {n}\n" for s, n in samples.items()))
    figures: dict[str, Any] = {"timer_layer_samples": sum(samples.values())}
    figures.update(
        {f"timer_{name}": value for name, value in profile.layers(samples, cpu, wakes).items()}
    )
    return figures


def main() -> None:
    write_part("timers", asyncio.run(run()))


if __name__ == "__main__":
    main()
