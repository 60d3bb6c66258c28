"""``make chaos``: the whole pipeline on a three-node cluster while it is hurt, then accounted for.

    .venv/bin/python -m bench.chaos          (CHAOS_SECONDS=60 for a short run)

What it does, twice with the same seed (a fault-free *baseline*, then the *chaos* run):

- starts a three-node KRaft cluster of its own (``aftercare broker`` with three nodes, on free
  ports under ``<AFTERCARE_HOME>/chaos``), topics with replication factor 3;
- runs the sandbox, two workers and two senders processes, and drives the simulator's population
  through them on an accelerated clock (``CHAOS_CUSTOMERS`` customers over ``CHAOS_DAYS`` simulated
  days in ``CHAOS_SECONDS`` real seconds);
- in the chaos run, on a fixed schedule: SIGKILLs a worker and produces malformed records while it
  is down; SIGKILLs a senders process; SIGKILLs a broker node and brings it back; takes SMTP down
  for a minute; throws a 429 storm at SMS; SIGKILLs the other worker and senders together with
  more malformed records; then, for every provider channel, SIGKILLs the senders right after the
  provider accepted a message and before the outcome is written (the sandbox's
  ``kill_after_accept``); every killed process is restarted and its recovery time measured;
- drains (until the worker group has committed every input and every dispatched touchpoint has
  an outcome, or ``CHAOS_DRAIN_SECONDS``) and accounts for everything from the topics and the
  sandbox's outbox:

  - inputs: malformed records produced vs dead-lettered (a missing one is a *skipped* offset), the
    worker group's lag at the end;
  - touchpoints: dispatched with no outcome (*lost*), with more than one outcome record, with
    outcomes that disagree;
  - providers: messages accepted twice for one touchpoint (per channel), and resends the provider
    folded by idempotency key;
  - EXPIRED outcomes, by journey, in both runs: the difference is what the faults cost;
  - decisions: touchpoint ids dispatched in one run and not the other.

Figures, not pass or fail: ``bench/results/chaos-latest.json`` and ``chaos-latest.md`` (and a
copy named by the run's UTC time). Exits non-zero only if a run could not be carried out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from bench.common import RESULTS
from pipeline import localkafka
from pipeline.clock import AcceleratedClock
from pipeline.codec import SchemaSet
from pipeline.config import LocalBroker, Settings
from pipeline.demo.children import Child, Children, ChildSpec
from pipeline.demo.ports import Ports, sandbox_channels
from pipeline.demo.watch import end_offsets, group_lag, wait_until
from pipeline.names import COPARTITIONED_ROLES, RECORD_OF_TOPIC, TopicRole
from pipeline.simulate.population import Plan, count_events, simulate
from pipeline.simulate.producer import produce
from pipeline.topics import ensure_topics, topic_partitions
from tests.integration.kafkatools import end_offsets as topic_ends
from tests.integration.kafkatools import produce_malformed, read_range
from tests.support import delete_topics_with_prefix, free_ports

CUSTOMERS = int(os.environ.get("CHAOS_CUSTOMERS", "800"))
# 3 simulated days in 4 real minutes: x1080, so one real second of a fault is 18 simulated
# minutes and the shortest validity (8 h) is 27 real seconds.
DAYS = float(os.environ.get("CHAOS_DAYS", "3"))
SECONDS = float(os.environ.get("CHAOS_SECONDS", "240"))
SEED = int(os.environ.get("CHAOS_SEED", "7"))
MALFORMED = int(os.environ.get("CHAOS_MALFORMED", "3000"))
DRAIN_SECONDS = float(os.environ.get("CHAOS_DRAIN_SECONDS", "120"))
FRESH_STARTS = int(os.environ.get("CHAOS_FRESH_STARTS", "10"))
READY_SECONDS = 90.0
STOP_SECONDS = 20.0
SMTP_OUTAGE_SECONDS = 60.0
STORM_SECONDS = 30.0
KILL_WAIT_SECONDS = 15.0  # how long armed kill-after-accept faults wait for a message
PROVIDER_CHANNELS = ("email", "sms", "whatsapp", "push", "webhook")
DISPATCH = RECORD_OF_TOPIC[TopicRole.DISPATCH]
DELIVERY = RECORD_OF_TOPIC[TopicRole.DELIVERIES]
DEAD_LETTER = RECORD_OF_TOPIC[TopicRole.DEAD_LETTERS]


@dataclass
class RunResult:
    name: str
    events_produced: int = 0
    malformed_produced: set[tuple[str, int, int]] = field(default_factory=set)
    dead_lettered: list[tuple[str, int, int]] = field(default_factory=list)
    worker_lag_at_end: int = -1
    drained: bool = False
    dispatched: dict[str, int] = field(default_factory=dict)  # touchpoint id -> records
    due: dict[str, datetime] = field(default_factory=dict)  # touchpoint id -> due time
    # touchpoint id -> due time of the ones with an outcome and no dispatch record: the worker's
    # own decisions (suppressed, expired before dispatch)
    undispatched_due: dict[str, datetime] = field(default_factory=dict)
    outcomes: dict[str, list[str]] = field(default_factory=dict)  # touchpoint id -> statuses
    expired_by: Counter[str] = field(default_factory=Counter)  # "worker: reason", "senders: ..."
    failed_by: Counter[str] = field(default_factory=Counter)  # "journey on CHANNEL: reason"
    journeys: dict[str, str] = field(default_factory=dict)  # touchpoint id -> journey
    accepted: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, tp) -> n
    folded: dict[str, int] = field(default_factory=dict)  # channel -> idempotent repeats
    faults: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class Pipeline:
    """One run's sandbox, two workers and two senders, on one clock and one topic prefix."""

    def __init__(self, name: str, cluster: LocalBroker, folder: Path, plan: Plan) -> None:
        self.name = name
        self.cluster = cluster
        self.folder = folder
        self.plan = plan
        stamp = datetime.now(UTC).strftime("%Y%m%dt%H%M%S")
        self.prefix = f"chaos-{stamp}-{name}."
        w1, w2, s1, s2, http_port, smtp_port = free_ports(6)
        self.ports = Ports(worker=w1, senders=s1, sandbox_http=http_port, sandbox_smtp=smtp_port)
        self.worker_ports = (w1, w2)
        self.senders_ports = (s1, s2)
        self.factor = plan.days * 86_400 / SECONDS
        self.epoch = time.time() + 20.0  # the clock starts once everything is up
        self.clock = AcceleratedClock(plan.start, self.factor, self.epoch)
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
            "AFTERCARE_REPLICATION_FACTOR": "3",
            "AFTERCARE_TOPIC_PREFIX": self.prefix,
            "AFTERCARE_WORKER_ID": f"{self.prefix}aftercare-worker",
            "AFTERCARE_SENDERS_ID": f"{self.prefix}aftercare-senders",
            "AFTERCARE_SESSION_TIMEOUT_SECONDS": "6",
            "AFTERCARE_CLOCK_FACTOR": repr(self.factor),
            "AFTERCARE_CLOCK_START": plan.start.isoformat(),
            "AFTERCARE_CLOCK_EPOCH": repr(self.epoch),
            "AFTERCARE_SANDBOX_HTTP_PORT": str(http_port),
            "AFTERCARE_SANDBOX_SMTP_PORT": str(smtp_port),
            "AFTERCARE_SANDBOX_DB": str(folder / "outbox.sqlite"),
            "AFTERCARE_LOG_LEVEL": "info",
            # A real cluster: the senders refuse the sandbox's signing key there.
            "AFTERCARE_PREFERENCES_KEY": secrets.token_urlsafe(32),
            **sandbox_channels(self.ports),
        }
        self.settings = Settings.from_env(self.env)
        self.children = Children(folder / "children.json")
        self.http = httpx.AsyncClient()

    def _spec(self, name: str, command: list[str], port: int, **extra: str) -> ChildSpec:
        url = (
            f"{self.ports.sandbox_url}/_sandbox/health"
            if name == "sandbox"
            else f"http://127.0.0.1:{port}/health/ready"
        )
        return ChildSpec(name, command, {**self.env, **extra}, self.folder / f"{name}.log", url)

    async def start(self) -> None:
        await ensure_topics(self.settings)
        specs = [self._spec("sandbox", ["sandbox", "serve", "--seed", str(SEED)], 0)]
        for i, port in enumerate(self.senders_ports, 1):
            specs.append(
                self._spec(f"senders-{i}", ["senders"], port, AFTERCARE_SENDERS_PORT=str(port))
            )
        for i, port in enumerate(self.worker_ports, 1):
            specs.append(
                self._spec(
                    f"worker-{i}",
                    ["worker"],
                    port,
                    AFTERCARE_WORKER_PORT=str(port),
                    AFTERCARE_STATE_DIR=str(self.folder / f"state-{i}"),
                )
            )
        for spec in specs:
            self.children.start(spec)
        deadline = time.monotonic() + READY_SECONDS
        for child in self.children.started:
            await child.wait_ready(self.http, deadline)

    def child(self, name: str) -> Child:
        return self.children.get(name)

    async def kill_and_restart(
        self, names: list[str], while_down: Callable[[], Awaitable[None]] | None = None
    ) -> dict[str, Any]:
        """SIGKILL ``names``, run ``while_down``, start them again: seconds until each is ready."""
        killed_at = time.monotonic()
        for name in names:
            self.child(name).signal_group(signal.SIGKILL)
        for name in names:
            process = self.child(name).process
            assert process is not None
            await asyncio.to_thread(process.wait)
        if while_down is not None:
            await while_down()
        return await self.restart(names, killed_at)

    async def restart(self, names: list[str], since: float) -> dict[str, Any]:
        for name in names:
            self.child(name).start()
        ready: dict[str, float] = {}
        deadline = time.monotonic() + READY_SECONDS
        for name in names:
            await self.child(name).wait_ready(self.http, deadline)
            ready[name] = round(time.monotonic() - since, 1)
        return {"ready_after_s": ready}

    async def takeover(self, survivor: str) -> float:
        """Seconds from now until ``survivor`` owns every input partition and is ready."""
        started = time.monotonic()
        url = self.child(survivor).spec.ready_url
        while time.monotonic() - started < READY_SECONDS:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                body = (await self.http.get(url, timeout=2.0)).json()
                if body.get("ready") and body.get("assigned_partitions") == (
                    self.settings.input_partitions
                ):
                    return round(time.monotonic() - started, 1)
            await asyncio.sleep(0.1)
        return float("nan")

    async def set_faults(self, channel: str, **fields: Any) -> None:
        answer = await self.http.put(
            f"{self.ports.sandbox_url}/_sandbox/faults/{channel}", json=fields
        )
        answer.raise_for_status()

    async def stop(self) -> None:
        for name in ("worker-1", "worker-2", "senders-1", "senders-2", "sandbox"):
            with contextlib.suppress(KeyError):
                await self.child(name).stop(STOP_SECONDS)
        await self.http.aclose()


async def fresh_starts(cluster: LocalBroker, folder: Path, count: int) -> dict[str, Any]:
    """``count`` fresh starts in a row of two workers on new topics: each must be ready and
    dead-letter a probe, or refuse with one line; never a live process with a dead loop."""
    outcomes: list[dict[str, Any]] = []
    for attempt in range(1, count + 1):
        run = Pipeline(f"fresh{attempt}", cluster, folder / f"fresh-{attempt}", Plan(customers=1))
        started = time.monotonic()
        await ensure_topics(run.settings)
        workers = []
        for i, port in enumerate(run.worker_ports, 1):
            spec = run._spec(
                f"worker-{i}",
                ["worker"],
                port,
                AFTERCARE_WORKER_PORT=str(port),
                AFTERCARE_STATE_DIR=str(run.folder / f"state-{i}"),
            )
            workers.append(run.children.start(spec))
        entry: dict[str, Any] = {}
        try:
            deadline = time.monotonic() + READY_SECONDS
            for worker in workers:
                await worker.wait_ready(run.http, deadline)
            entry["ready_s"] = round(time.monotonic() - started, 1)
            probe = await _malformed(run.settings, 20, f"fresh start {attempt}")
            result = RunResult(run.name)
            until = time.monotonic() + 60
            while time.monotonic() < until:
                await _read_topics(run, result)
                if probe <= set(result.dead_lettered):
                    break
                await asyncio.sleep(0.5)
            entry["processing"] = probe <= set(result.dead_lettered)
            entry["alive"] = all(w.exit_status() is None for w in workers)
        except Exception as exc:  # a refusal must be one clear line in the log
            entry["failed"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            entry["exit_status"] = [w.exit_status() for w in workers]
        finally:
            for worker in workers:
                await worker.stop(STOP_SECONDS)
            await run.http.aclose()
            with contextlib.suppress(Exception):
                await delete_topics_with_prefix(run.settings, run.prefix)
        outcomes.append(entry)
        print(f"  fresh start {attempt}: {entry}", file=sys.stderr, flush=True)
    return {
        "starts": count,
        "processing": sum(1 for e in outcomes if e.get("processing") and e.get("alive")),
        "refused_cleanly": sum(1 for e in outcomes if "failed" in e),
        "ready_s": [e.get("ready_s") for e in outcomes],
        "each": outcomes,
    }


async def _malformed(settings: Settings, count: int, tag: str) -> set[tuple[str, int, int]]:
    producer = AIOKafkaProducer(acks="all", **settings.kafka_client_kwargs())
    await producer.start()
    try:
        return await produce_malformed(producer, settings, count, tag)
    finally:
        await producer.stop()


async def _faults(run: Pipeline, result: RunResult, t0: float) -> None:
    """The chaos schedule, at fixed shares of the simulated span."""

    async def at(share: float) -> None:
        await asyncio.sleep(max(0.0, t0 + share * SECONDS - time.monotonic()))

    def note(kind: str, **figures: Any) -> None:
        entry = {"fault": kind, "at_s": round(time.monotonic() - t0, 1), **figures}
        result.faults.append(entry)
        print(f"  [{entry['at_s']:>6.1f} s] {kind} {figures}", file=sys.stderr, flush=True)

    async def letters(tag: str) -> None:
        result.malformed_produced |= await _malformed(run.settings, MALFORMED // 2, tag)

    async def for_a_while(
        channel: str, seconds: float, on: dict[str, Any], off: dict[str, Any]
    ) -> None:
        await run.set_faults(channel, **on)
        await asyncio.sleep(seconds)
        await run.set_faults(channel, **off)

    background: list[asyncio.Task[None]] = []
    await at(0.06)
    killed = await run.kill_and_restart(["worker-1"], lambda: letters("worker-1 down"))
    note("SIGKILL worker-1, malformed records while down", **killed)
    await at(0.14)
    note("SIGKILL senders-1", **await run.kill_and_restart(["senders-1"]))
    await at(0.22)
    lost = time.monotonic()
    localkafka.stop(run.cluster, node=2, kill=True)
    await asyncio.sleep(20.0)
    await asyncio.to_thread(localkafka.start, run.cluster)
    note("SIGKILL broker node 2 for 20 s", back_after_s=round(time.monotonic() - lost, 1))
    await at(0.30)
    note("SMTP down", seconds=SMTP_OUTAGE_SECONDS)
    outage = {"outage_until": time.time() + SMTP_OUTAGE_SECONDS}
    background.append(asyncio.create_task(run.set_faults("email", **outage)))
    await at(0.40)
    note("429 storm on SMS", seconds=STORM_SECONDS)
    storm = for_a_while("sms", STORM_SECONDS, {"throttle_rate": 1.0}, {"throttle_rate": 0.0})
    background.append(asyncio.create_task(storm))
    await at(0.45)
    takeover: dict[str, float] = {}

    async def taken_over() -> None:
        await letters("worker-2 down")
        takeover["worker_1_owns_every_partition_after_s"] = await run.takeover("worker-1")

    killed = await run.kill_and_restart(["worker-2", "senders-2"], taken_over)
    note("SIGKILL worker-2 and senders-2, malformed records while down", **killed, **takeover)
    await at(0.55)
    await _kill_after_accepting(run, note, t0 + 0.95 * SECONDS)
    await asyncio.gather(*background)


async def _kill_after_accepting(run: Pipeline, note: Callable[..., None], until: float) -> None:
    """Arm every provider channel at once with both senders' pids; each time the senders die,
    the channel whose fault fired is noted, they are restarted and the rest re-armed."""
    waiting = list(PROVIDER_CHANNELS)
    while waiting and time.monotonic() < until:
        senders = [run.child("senders-1"), run.child("senders-2")]
        pids = [c.pid for c in senders if c.pid is not None]
        since = time.monotonic()
        for channel in waiting:
            await run.set_faults(channel, kill_after_accept=pids)
        await wait_until(
            lambda group=senders: any(c.exit_status() is not None for c in group),
            min(until, since + KILL_WAIT_SECONDS),
        )
        died = time.monotonic()
        current = (await run.http.get(f"{run.ports.sandbox_url}/_sandbox/faults")).json()
        fired = [c for c in waiting if not current[c]["kill_after_accept"]]
        for channel in waiting:
            await run.set_faults(channel, kill_after_accept=[])
        if not fired:
            continue  # no message on any armed channel in time: arm again
        for child in senders:  # both were signalled: wait for both to go
            if child.process is not None:
                await asyncio.to_thread(child.process.wait)
        restarted = await run.restart(["senders-1", "senders-2"], died)
        for channel in fired:
            note(f"SIGKILL senders after {channel} accepted", **restarted)
            waiting.remove(channel)
    for channel in waiting:
        note(f"SIGKILL senders after {channel} accepted", killed=False, why="no message in time")


async def one_run(name: str, cluster: LocalBroker, folder: Path, *, faults: bool) -> RunResult:
    plan = Plan(customers=CUSTOMERS, days=DAYS, seed=SEED)
    run = Pipeline(name, cluster, folder, plan)
    result = RunResult(name)
    started = time.monotonic()
    print(
        f"{name}: {CUSTOMERS} customers, {count_events(plan)} events, {DAYS:g} days in "
        f"{SECONDS:g} s (x{run.factor:,.0f}), topics {run.prefix}*",
        file=sys.stderr,
        flush=True,
    )
    try:
        await run.start()
        result.seconds["startup"] = round(time.monotonic() - started, 1)
        await asyncio.sleep(max(0.0, run.epoch - time.time()))
        t0 = time.monotonic()
        schedule = asyncio.create_task(_faults(run, result, t0)) if faults else None
        result.events_produced = await produce(run.settings, simulate(plan), clock=run.clock)
        await asyncio.sleep(run.clock.real_seconds_until(plan.end))
        if schedule is not None:
            await schedule
        result.seconds["simulation"] = round(time.monotonic() - t0, 1)
        drain_started = time.monotonic()
        await _drain(run, result)
        result.seconds["drain"] = round(time.monotonic() - drain_started, 1)
        await _read_topics(run, result)
        result.accepted, result.folded = _outbox(folder / "outbox.sqlite"), await _folded(run)
    finally:
        await run.stop()
        with contextlib.suppress(Exception):
            await delete_topics_with_prefix(run.settings, run.prefix)
    result.seconds["total"] = round(time.monotonic() - started, 1)
    return result


async def _drain(run: Pipeline, result: RunResult) -> None:
    settings = run.settings
    inputs = await topic_partitions(settings, [settings.topic(r) for r in COPARTITIONED_ROLES])
    deadline = time.monotonic() + DRAIN_SECONDS
    lag = -1
    while time.monotonic() < deadline:
        lag = await group_lag(settings, settings.worker_id, await end_offsets(settings, inputs))
        if lag == 0:
            break
        await asyncio.sleep(0.5)
    result.worker_lag_at_end = lag
    while time.monotonic() < deadline:
        await _read_topics(run, result)
        if lag == 0 and all(tp in result.outcomes for tp in result.dispatched):
            result.drained = True
            return
        await asyncio.sleep(1.0)


async def _read_topics(run: Pipeline, result: RunResult) -> None:
    settings = run.settings
    schemas = SchemaSet.load()
    dispatched: Counter[str] = Counter()
    outcomes: dict[str, list[str]] = defaultdict(list)
    letters: list[tuple[str, int, int]] = []
    expired_by: Counter[str] = Counter()
    failed_by: Counter[str] = Counter()
    outcome_due: dict[str, datetime] = {}
    for role in (TopicRole.DISPATCH, TopicRole.DELIVERIES, TopicRole.DEAD_LETTERS):
        for message in await _read_all(settings, settings.topic(role)):
            if role is TopicRole.DISPATCH:
                record = schemas.decode(message.value, DISPATCH).record
                dispatched[record["touchpoint_id"]] += 1
                result.due[record["touchpoint_id"]] = record["due_at"]
                result.journeys[record["touchpoint_id"]] = record["journey"]
            elif role is TopicRole.DELIVERIES:
                record = schemas.decode(message.value, DELIVERY).record
                outcomes[record["touchpoint_id"]].append(record["status"])
                if record["status"] == "EXPIRED":
                    who = "senders" if record["channel"] else "worker"
                    expired_by[f"{who}: {record['reason']}"] += 1
                elif record["status"] == "FAILED":
                    failed_by[
                        f"{record['journey']} on {record['channel']}: {record['reason']}"
                    ] += 1
                result.journeys.setdefault(record["touchpoint_id"], record["journey"])
                outcome_due[record["touchpoint_id"]] = record["due_at"] or record["occurred_at"]
            else:
                record = schemas.decode(message.value, DEAD_LETTER).record
                letters.append(
                    (record["source_topic"], record["source_partition"], record["source_offset"])
                )
    result.dispatched, result.outcomes, result.dead_lettered = (
        dict(dispatched),
        dict(outcomes),
        letters,
    )
    result.expired_by, result.failed_by = expired_by, failed_by
    result.undispatched_due = {tp: due for tp, due in outcome_due.items() if tp not in dispatched}


async def _read_all(settings: Settings, topic: str) -> list[Any]:
    """Every record of ``topic`` (the run's topics are new: each partition starts at 0)."""
    return await read_range(settings, topic, {}, await topic_ends(settings, topic), timeout=120)


def _outbox(path: Path) -> dict[tuple[str, str], int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            "SELECT channel, touchpoint_id, COUNT(*) FROM messages "
            "WHERE touchpoint_id IS NOT NULL GROUP BY channel, touchpoint_id"
        ).fetchall()
    return {(channel, touchpoint): count for channel, touchpoint, count in rows}


async def _folded(run: Pipeline) -> dict[str, int]:
    answer = await run.http.get(f"{run.ports.sandbox_url}/_sandbox/counts")
    counts: dict[str, dict[str, int]] = answer.json()
    return {channel: kinds.get("duplicate", 0) for channel, kinds in counts.items()}


def account(run: RunResult) -> dict[str, Any]:
    lettered = set(run.dead_lettered)
    statuses = Counter(s for outcome in run.outcomes.values() for s in set(outcome))
    expired = Counter(
        run.journeys.get(tp, "?") for tp, outcome in run.outcomes.items() if "EXPIRED" in outcome
    )
    twice = Counter(channel for (channel, _), n in run.accepted.items() if n > 1)
    return {
        "events_produced": run.events_produced,
        "malformed_produced": len(run.malformed_produced),
        "malformed_dead_lettered": len(run.malformed_produced & lettered),
        "skipped_inputs": len(run.malformed_produced - lettered),
        "dead_letters_repeated": len(run.dead_lettered) - len(lettered),
        "worker_lag_at_end": run.worker_lag_at_end,
        "drained": run.drained,
        "touchpoints_dispatched": len(run.dispatched),
        "dispatch_records_repeated": sum(n - 1 for n in run.dispatched.values()),
        "touchpoints_with_outcome": len(run.outcomes),
        "lost_touchpoints": sum(1 for tp in run.dispatched if tp not in run.outcomes),
        "touchpoints_with_several_outcome_records": sum(
            1 for o in run.outcomes.values() if len(o) > 1
        ),
        "touchpoints_with_conflicting_outcomes": sum(
            1 for o in run.outcomes.values() if len(set(o)) > 1
        ),
        "outcomes": dict(sorted(statuses.items())),
        "expired_by_journey": dict(sorted(expired.items())),
        "expired_by_recorder_and_reason": dict(run.expired_by.most_common(8)),
        "failed_by_journey_channel_and_reason": dict(run.failed_by.most_common(8)),
        "accepted_twice_by_channel": dict(sorted(twice.items())),
        "resends_folded_by_idempotency_key": {k: v for k, v in sorted(run.folded.items()) if v},
        "faults": run.faults,
        "seconds": run.seconds,
    }


def compare(baseline: RunResult, chaos: RunResult, end: datetime) -> dict[str, Any]:
    """Touchpoints due within the simulated span, in one run and not the other; after it, each
    run's drain went on for its own length of simulated time."""
    base = {tp for tp, due in baseline.due.items() if due < end}
    hurt = {tp for tp, due in chaos.due.items() if due < end}
    differing = _differing(baseline, chaos, base & hurt)
    # the worker's decisions that never reached dispatch (a suppression for consent, a holdout,
    # an expiry): a fault must not change those either
    kept = {tp for tp, due in baseline.undispatched_due.items() if due < end}
    held = {tp for tp, due in chaos.undispatched_due.items() if due < end}
    undispatched_differing = _differing(baseline, chaos, kept & held)

    def by_journey(run: RunResult, ids: set[str]) -> dict[str, int]:
        return dict(Counter(run.journeys.get(tp, "?") for tp in ids).most_common())

    return {
        "only_in_baseline_by_journey": by_journey(baseline, base - hurt),
        "only_in_chaos_by_journey": by_journey(chaos, hurt - base),
        "dispatched_only_in_baseline": len(base - hurt),
        "dispatched_only_in_chaos": len(hurt - base),
        "dispatched_in_both_with_other_outcomes": len(differing),
        "examples_only_in_baseline": sorted(base - hurt)[:5],
        "examples_only_in_chaos": sorted(hurt - base)[:5],
        "examples_other_outcomes": differing[:5],
        "undispatched_outcomes_in_span": len(kept),
        "undispatched_only_in_baseline_by_journey": by_journey(baseline, kept - held),
        "undispatched_only_in_chaos_by_journey": by_journey(chaos, held - kept),
        "undispatched_in_both_with_other_outcomes": len(undispatched_differing),
        "examples_undispatched_only_in_baseline": sorted(kept - held)[:5],
        "examples_undispatched_only_in_chaos": sorted(held - kept)[:5],
        "examples_undispatched_other_outcomes": undispatched_differing[:5],
        "expired_added_by_faults": sum(1 for o in chaos.outcomes.values() if "EXPIRED" in o)
        - sum(1 for o in baseline.outcomes.values() if "EXPIRED" in o),
    }


def _differing(baseline: RunResult, chaos: RunResult, touchpoints: set[str]) -> list[str]:
    return sorted(
        tp
        for tp in touchpoints
        if set(baseline.outcomes.get(tp, [])) != set(chaos.outcomes.get(tp, []))
    )


def markdown(figures: dict[str, Any]) -> str:
    base, hurt = figures["baseline"], figures["chaos"]
    keys = [
        "events_produced",
        "malformed_produced",
        "malformed_dead_lettered",
        "skipped_inputs",
        "dead_letters_repeated",
        "worker_lag_at_end",
        "drained",
        "touchpoints_dispatched",
        "dispatch_records_repeated",
        "touchpoints_with_outcome",
        "lost_touchpoints",
        "touchpoints_with_several_outcome_records",
        "touchpoints_with_conflicting_outcomes",
        "outcomes",
        "expired_by_journey",
        "expired_by_recorder_and_reason",
        "failed_by_journey_channel_and_reason",
        "accepted_twice_by_channel",
        "resends_folded_by_idempotency_key",
        "seconds",
    ]
    lines = [
        f"# Fault suite, {figures['date']}",
        "",
        f"{figures['config']}",
        "",
        "| figure | baseline | chaos |",
        "|---|---|---|",
    ]
    for key in keys:
        lines.append(f"| {key} | {_cell(base[key])} | {_cell(hurt[key])} |")
    lines += ["", "## Faults and recovery", "", "| at (s) | fault | figures |", "|---|---|---|"]
    for entry in hurt["faults"]:
        rest = {k: v for k, v in entry.items() if k not in ("fault", "at_s")}
        lines.append(f"| {entry['at_s']} | {entry['fault']} | {_cell(rest)} |")
    fresh = figures["fresh_starts"]
    lines += [
        "",
        "## Fresh starts of two workers",
        "",
        f"{fresh['starts']} in a row: {fresh['processing']} processing, "
        f"{fresh['refused_cleanly']} refused; seconds to ready: {_cell(fresh['ready_s'])}",
    ]
    lines += ["", "## Chaos against baseline", ""]
    lines += [f"- {key}: {_cell(value)}" for key, value in figures["comparison"].items()]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return str(value)


async def main() -> int:
    local = Settings.from_env().local_broker
    os.environ[localkafka.LIBS_ENV] = str(localkafka.ensure_jars(local))  # fetched once, shared
    home = local.home / "chaos"
    if home.exists():
        shutil.rmtree(home)
    ports = free_ports(6)
    cluster = LocalBroker(
        home=home / "cluster",
        port=ports[0],
        controller_port=ports[1],
        heap="768m",
        nodes=3,
        node_ports=((ports[0], ports[1]), (ports[2], ports[3]), (ports[4], ports[5])),
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for run in ("baseline", "chaos", "fresh"):
        (home / run).mkdir(parents=True)
    print(f"starting a three-node cluster at {cluster.bootstrap}", file=sys.stderr, flush=True)
    localkafka.start(cluster)
    try:
        starts = await fresh_starts(cluster, home / "fresh", FRESH_STARTS)
        baseline = await one_run("baseline", cluster, home / "baseline", faults=False)
        chaos = await one_run("chaos", cluster, home / "chaos", faults=True)
    finally:
        localkafka.stop(cluster)
    figures = {
        "date": stamp,
        "config": (
            f"{CUSTOMERS} customers, {DAYS:g} simulated days in {SECONDS:g} s, seed {SEED}, "
            f"{MALFORMED} malformed records, three brokers (replication 3, min.insync 2), two "
            f"workers, two senders; {os.cpu_count()} cores"
        ),
        "baseline": account(baseline),
        "chaos": account(chaos),
        "fresh_starts": starts,
        "comparison": compare(baseline, chaos, Plan(customers=CUSTOMERS, days=DAYS, seed=SEED).end),
    }
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(figures, indent=2, sort_keys=True) + "\n"
    table = markdown(figures)
    for name in (f"chaos-{stamp}", "chaos-latest"):
        (RESULTS / f"{name}.json").write_text(text)
        (RESULTS / f"{name}.md").write_text(table)
    print(table)
    print(f"figures in {RESULTS}/chaos-latest.json and .md; logs in {home}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
