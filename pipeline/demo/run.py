"""``aftercare run``: the whole pipeline, on one machine, through a simulated month and a half.

The phases, in order (each is a method of :class:`Demo`):

1. **broker**: the local broker is started unless ``KAFKA_BOOTSTRAP_SERVERS`` names a cluster; a
   broker this run started is stopped at the end, one that was already running is left alone.
2. **isolate**: a run folder, a topic prefix and consumer groups of its own (:mod:`.runs`);
   earlier demo runs' topics are deleted; the topics are created.
3. **start**: the sandbox, the senders and the worker as child processes (:mod:`.children`), all on
   one accelerated clock: the same start instant, factor and wall-clock epoch, so they agree on
   what "now" is. The epoch lies a little in the future (:data:`CLOCK_LEAD_SECONDS`), the time the
   children need to be ready before the first simulated event is due.
4. **simulate**: the simulated population's events are produced as the clock reaches them, while
   :mod:`.watch` counts what comes out of ``dispatch`` and ``deliveries``.
5. **drain**: once the simulated span is over, the worker is stopped as soon as it has consumed
   every event (nothing new is decided after that), then the senders once every dispatched
   touchpoint has an outcome, then the sandbox.
6. **report**: the analysts' report, ``summary.json`` and a table on stdout.

Whatever happens (an error, a child that dies, Ctrl-C, SIGTERM), every child is stopped in a
``finally`` before the command returns: 130 after Ctrl-C, 143 after SIGTERM, 1 after an error.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx
from aiokafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from pipeline import localkafka
from pipeline.analytics.report import (
    ReportData,
    ReportFiles,
    format_seconds,
    summarize,
    write_report,
)
from pipeline.analytics.uplift import Behaviour, Uplift, headlines, measure
from pipeline.clock import AcceleratedClock
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.demo.children import Child, ChildError, Children, ChildSpec
from pipeline.demo.runs import RunDir, delete_earlier_runs, demo_prefix
from pipeline.demo.watch import (
    Follower,
    Offsets,
    Tally,
    end_offsets,
    group_lag,
    wait_until,
)
from pipeline.journeysfile import JourneysFileError, load_journeys
from pipeline.metrics import EVENTS
from pipeline.names import COPARTITIONED_ROLES, TopicRole
from pipeline.progress import Progress
from pipeline.sandbox.server import SandboxConfig
from pipeline.simulate.population import Plan, SimEvent, count_events, simulate
from pipeline.simulate.producer import produce
from pipeline.topics import ensure_topics, topic_partitions

# Real seconds from starting the children to the first simulated instant: enough for the worker
# to join its group and recover its (empty) table on a busy laptop. Simulated time before then
# passes without events, so a generous lead costs only waiting.
CLOCK_LEAD_SECONDS = 10.0
STOP_SECONDS = 30.0  # SIGTERM to SIGKILL, per child
SANDBOX = SandboxConfig()


class DemoError(RuntimeError):
    """The demo cannot run or went wrong; the message says what, where and what to do."""


@dataclass(frozen=True)
class DemoOptions:
    customers: int = 400
    days: float = 45.0
    minutes: float = 2.0  # real minutes for the simulated span
    seed: int = 42
    startup_seconds: float = 90.0  # deadline for every child to be ready
    drain_seconds: float = 90.0  # deadline for the pipeline to drain after the span

    def check(self) -> None:
        for name in ("customers", "days", "minutes", "startup_seconds", "drain_seconds"):
            if not getattr(self, name) > 0:
                option = "--" + name.replace("_", "-")
                raise DemoError(f"{option} must be positive, got {getattr(self, name)}")

    @property
    def clock_factor(self) -> float:
        """Simulated seconds per real second."""
        return self.days * 86400.0 / (self.minutes * 60.0)


@dataclass
class Ports:
    worker: int
    senders: int
    sandbox_http: int
    sandbox_smtp: int
    preferences: int = 6068
    notes: list[str] = field(default_factory=list)

    @property
    def preferences_url(self) -> str:
        return f"http://127.0.0.1:{self.preferences}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_http}"

    @property
    def worker_metrics(self) -> str:
        return f"http://127.0.0.1:{self.worker}/metrics"

    @property
    def senders_metrics(self) -> str:
        return f"http://127.0.0.1:{self.senders}/metrics"


def run_demo(
    settings: Settings,
    options: DemoOptions,
    *,
    environ: Mapping[str, str] | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run the demo; the exit status. :class:`DemoError` for anything the user can fix."""
    options.check()
    demo = Demo(settings, options, dict(os.environ if environ is None else environ), out, err)
    return asyncio.run(demo.main())


class Demo:
    def __init__(
        self,
        settings: Settings,
        options: DemoOptions,
        environ: dict[str, str],
        out: TextIO,
        err: TextIO,
    ) -> None:
        self.base = settings
        self.options = options
        self.environ = environ
        self.out = out
        self.err = err
        self.signalled: int | None = None
        self.failure: BaseException | None = None
        self.children: Children | None = None
        self.display: Display | None = None
        self.started_broker = False
        self.cleaning = False  # set once the children and the broker are being stopped
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}

    # -- the whole run, and how it ends -------------------------------------------------------

    async def main(self) -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        for signum in handled:
            loop.add_signal_handler(signum, self._on_signal, signum, task)
        try:
            await self._run()
        except asyncio.CancelledError:
            if self.signalled is None and self.failure is None:
                raise
            task.uncancel()
        except ChildError as exc:
            raise DemoError(str(exc)) from None
        except KafkaError as exc:
            raise DemoError(
                f"Kafka at {self.base.bootstrap_servers} failed ({type(exc).__name__}: {exc}); "
                "is the broker running (`aftercare broker status`)?"
            ) from None
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
        if self.failure is not None:
            raise DemoError(str(self.failure))
        if self.signalled is not None:
            self._say("stopped: every process this run started has ended")
            return 128 + self.signalled
        return 0

    def _on_signal(self, signum: int, task: asyncio.Task[Any]) -> None:
        if self.signalled is not None:
            # A second Ctrl-C: no more patience for clean shutdowns.
            self._say("stopping at once (SIGKILL)")
            if self.children is not None:
                self.children.kill_all()
            return
        self.signalled = signum
        self._say(f"\n{signal.Signals(signum).name}: stopping every process of this run")
        if not self.cleaning:  # cancelling the cleanup itself would leave children behind
            task.cancel()

    def _abort(self, failure: BaseException, task: asyncio.Task[Any]) -> None:
        if self.failure is None and self.signalled is None:
            self.failure = failure
            if not self.cleaning:
                task.cancel()

    def _say(self, text: str) -> None:
        if self.display is not None:
            self.display.close()
        print(text, file=self.err, flush=True)

    async def _run(self) -> None:
        try:
            await self._broker()
            await self._pipeline()
        finally:
            self.cleaning = True
            if self.display is not None:
                self.display.close()
            if self.children is not None:
                await self.children.stop_all(STOP_SECONDS)
            if self.started_broker:
                broker = self.base.local_broker
                print(f"stopping the local broker at {broker.bootstrap}", file=self.err)
                await asyncio.to_thread(localkafka.stop, broker)

    # -- 1. broker --------------------------------------------------------------------------

    async def _broker(self) -> None:
        """Start the local broker if needed, noting whether this run started it."""
        settings = self.base
        if not settings.uses_local_broker:
            print(f"using the Kafka cluster at {settings.bootstrap_servers}", file=self.err)
            return
        broker = settings.local_broker
        status = await asyncio.to_thread(localkafka.status, broker)
        if status.running:
            print(f"using the local broker at {broker.bootstrap} (already running)", file=self.err)
            return
        print(f"starting the local Kafka broker at {broker.bootstrap} ...", file=self.err)
        # Set first: a run interrupted while the broker starts stops it too (stopping waits for
        # the start to finish; both hold the broker's lock).
        self.started_broker = True
        try:
            state = await asyncio.to_thread(localkafka.start, broker)
        except localkafka.LocalBrokerError:
            self.started_broker = False  # a failed start leaves nothing running
            raise
        print(f"Kafka is running at {state.bootstrap} (pid {state.pid})", file=self.err)

    # -- 2-6 --------------------------------------------------------------------------------

    async def _pipeline(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        options = self.options
        run = RunDir.create(self.base.local_broker.home, datetime.now(UTC))
        explicit_prefix = self.environ.get("AFTERCARE_TOPIC_PREFIX", "").strip()
        prefix = explicit_prefix or demo_prefix(run.stamp)
        try:
            plan = Plan(customers=options.customers, days=options.days, seed=options.seed)
        except ValueError as exc:
            raise DemoError(f"cannot simulate that: {exc}") from None
        ports = choose_ports(self.base, self.environ)
        env = self._child_env(run, prefix, explicit=bool(explicit_prefix), ports=ports)
        env["AFTERCARE_CLOCK_FACTOR"] = repr(options.clock_factor)
        env["AFTERCARE_CLOCK_START"] = plan.start.isoformat()
        settings = Settings.from_env(env)  # what the children will read, minus the epoch
        try:
            journeys = load_journeys(settings.journeys_file or None)
        except JourneysFileError as exc:
            raise DemoError(f"the worker would refuse its journeys file: {exc}") from None
        # The simulated customers react to the messages they get: not to those held out.
        plan = replace(plan, holdouts=journeys.holdouts)
        run.write_run_file(
            topic_prefix=prefix, clock_factor=options.clock_factor, options=asdict(options)
        )
        for note in ports.notes:
            print(note, file=self.err)

        planned = count_events(plan)
        customers = plan.customers
        print(
            f"run {run.stamp}: {customers} customers, {planned} events over "
            f"{options.days:g} simulated days in {options.minutes:g} real minutes "
            f"(clock x{options.clock_factor:,.0f}), topics {prefix}*",
            file=self.err,
        )
        if not explicit_prefix:
            try:
                deleted = await delete_earlier_runs(
                    settings, self.base.local_broker.home, run.stamp
                )
            except KafkaError as exc:  # tidying up is worth a try, not a failed run
                print(f"could not delete earlier demo runs' topics: {exc}", file=self.err)
            else:
                if deleted:
                    print(f"deleted {len(deleted)} topics of earlier demo runs", file=self.err)
        await ensure_topics(settings)
        watched = await topic_partitions(
            settings, [settings.topic(TopicRole.DISPATCH), settings.topic(TopicRole.DELIVERIES)]
        )
        # What the worker consumes: the input topics and its own due-notices (a notice still
        # unread when it stopped would be a touchpoint due in the span but never sent).
        inputs = await topic_partitions(
            settings, [settings.topic(role) for role in COPARTITIONED_ROLES]
        )
        start = await end_offsets(settings, watched)

        # -- 3. start the children on one clock
        epoch = time.time() + CLOCK_LEAD_SECONDS
        env["AFTERCARE_CLOCK_EPOCH"] = repr(epoch)
        clock = AcceleratedClock(plan.start, options.clock_factor, epoch)
        self.children = children = Children(run.children)
        specs = [
            ChildSpec(
                "sandbox",
                ["sandbox", "serve", "--seed", str(options.seed)],
                env,
                run.log("sandbox"),
                f"{ports.sandbox_url}/_sandbox/health",
            ),
            ChildSpec(
                "senders",
                ["senders"],
                env,
                run.log("senders"),
                f"http://127.0.0.1:{ports.senders}/health/ready",
            ),
            ChildSpec(
                "preferences",
                ["preferences-api"],
                env,
                run.log("preferences"),
                f"{ports.preferences_url}/health/ready",
            ),
            ChildSpec(
                "worker",
                ["worker"],
                env,
                run.log("worker"),
                f"http://127.0.0.1:{ports.worker}/health/ready",
            ),
        ]
        for spec in specs:
            children.start(spec)
        spawned = time.monotonic()

        def ready(child: Child) -> None:
            print(f"  {child.name} ready ({time.monotonic() - spawned:.1f} s)", file=self.err)

        print(
            f"starting the sandbox, the senders, the preferences service and the worker (logs in "
            f"{run.path})",
            file=self.err,
        )
        await children.wait_ready(spawned + options.startup_seconds, ready)
        self.timings["startup"] = time.monotonic() - self.started
        lead = epoch - time.time()
        self.timings["waiting_for_the_clock"] = max(lead, 0.0)
        self._print_urls(ports, run, lead)

        # -- 4. simulate
        schemas = SchemaSet.load()
        tally = Tally()
        follower = Follower(settings, schemas, tally, start)
        following = asyncio.create_task(follower.run(), name="follower")
        background = [
            following,
            asyncio.create_task(self._watchdog(children, following, task), name="watchdog"),
        ]
        scheduled = {"customers": 0}
        background.append(
            asyncio.create_task(self._poll_worker(ports, scheduled), name="poll-worker")
        )
        self.display = display = Display(self.err, plan, planned, tally, clock, scheduled)
        background.append(asyncio.create_task(display.run(), name="display"))
        behaviour = Behaviour()  # what the customers did, for the uplift section

        def observed(events: Iterator[SimEvent]) -> Iterator[SimEvent]:
            for event in events:
                behaviour.add(event.record)
                yield event

        try:
            events = observed(simulate(plan))
            sent = await produce(settings, events, clock=clock, on_sent=display.sent, stop=None)
            await asyncio.sleep(clock.real_seconds_until(plan.end))
            self.timings["simulation"] = time.time() - epoch

            # -- 5. drain
            display.phase = "draining"
            drain_started = time.monotonic()
            drained = await self._drain(settings, children, follower, tally, inputs, watched, clock)
            self.timings["drain"] = time.monotonic() - drain_started
            sandbox_counts = await _get_json(f"{ports.sandbox_url}/_sandbox/counts")
            await children.get("sandbox").stop(STOP_SECONDS)
            display.phase = "done"
        finally:
            for job in background:
                job.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            display.close()
        await children.stop_all(STOP_SECONDS)

        # -- 6. report
        report_started = time.monotonic()
        data = summarize(tally.outcome_records, tally.dispatch_records)
        uplift = measure(tally.outcome_records, behaviour, tally.dispatch_records)
        title = f"Aftercare demo run {run.stamp}"
        files = await asyncio.to_thread(
            write_report,
            data,
            run.report,
            clock_factor=options.clock_factor,
            title=title,
            uplift=uplift,
        )
        self.timings["report"] = time.monotonic() - report_started
        self.timings["total"] = time.monotonic() - self.started
        summary = build_summary(
            run=run,
            settings=settings,
            options=options,
            plan=plan,
            events=planned,
            sent=sent,
            customers=customers,
            data=data,
            uplift=uplift,
            files=files,
            tally=tally,
            drained=drained,
            sandbox_counts=sandbox_counts,
            ports=ports,
            timings=self.timings,
            children=json.loads(run.children.read_text()),
        )
        partial = run.summary.with_name(run.summary.name + ".partial")
        partial.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        partial.replace(run.summary)
        for line in summary_lines(summary, data, options.clock_factor):
            print(line, file=self.out)
        self.out.flush()

    def _child_env(
        self, run: RunDir, prefix: str, *, explicit: bool, ports: Ports
    ) -> dict[str, str]:
        env = dict(self.environ)
        env["AFTERCARE_TOPIC_PREFIX"] = prefix
        if not explicit:  # a run of its own: groups and changelog named after the run
            env["AFTERCARE_WORKER_ID"] = f"{prefix}aftercare-worker"
            env["AFTERCARE_SENDERS_ID"] = f"{prefix}aftercare-senders"
        if not env.get("AFTERCARE_STATE_DIR", "").strip():
            env["AFTERCARE_STATE_DIR"] = str(run.state)
        env["AFTERCARE_WORKER_PORT"] = str(ports.worker)
        env["AFTERCARE_SENDERS_PORT"] = str(ports.senders)
        env["AFTERCARE_SANDBOX_HTTP_PORT"] = str(ports.sandbox_http)
        env["AFTERCARE_SANDBOX_SMTP_PORT"] = str(ports.sandbox_smtp)
        env["AFTERCARE_PREFERENCES_PORT"] = str(ports.preferences)
        # The senders sign the links and the preferences service checks them: one key for both,
        # this run's own unless one is set (on a real cluster the sandbox's is refused).
        env["AFTERCARE_PREFERENCES_KEY"] = self.environ.get(
            "AFTERCARE_PREFERENCES_KEY", ""
        ).strip() or secrets.token_urlsafe(32)
        # The links in this run's mail reach this run's preferences service.
        env["AFTERCARE_UNSUBSCRIBE_URL"] = ports.preferences_url
        env["AFTERCARE_SANDBOX_DB"] = str(run.outbox)
        # Simulated customers are never messaged for real: every channel goes to this run's
        # sandbox, whatever the environment says about providers.
        env.update(sandbox_channels(ports))
        return env

    def _print_urls(self, ports: Ports, run: RunDir, lead: float) -> None:
        lines = [
            "the pipeline is up:",
            f"  worker metrics   {ports.worker_metrics}",
            f"  senders metrics  {ports.senders_metrics}",
            f"  sandbox outbox   {ports.sandbox_url}/_sandbox/messages  "
            f"(or `aftercare sandbox messages --url {ports.sandbox_url}`)",
            f"  unsubscribe links in the mail go to {ports.preferences_url}",
        ]
        if lead < 0:
            lines.append(
                f"the pipeline was ready {-lead:.1f} s after simulated time began: events of the "
                f"first {-lead * self.options.clock_factor / 3600:.0f} simulated hours reach it "
                "late (give the run more real minutes, or try again on a quieter machine)"
            )
        print("\n".join(lines), file=self.err, flush=True)

    async def _watchdog(
        self, children: Children, following: asyncio.Task[None], task: asyncio.Task[Any]
    ) -> None:
        """Abort the run when a child dies, or the reading of the results fails."""
        while True:
            dead = children.died()
            if dead is not None:
                self._abort(dead.failure("stopped during the run"), task)
                return
            if following.done() and not following.cancelled():
                exc = following.exception()
                self._abort(
                    DemoError(
                        "reading the dispatch and deliveries topics failed "
                        f"({type(exc).__name__}: {exc})"
                    ),
                    task,
                )
                return
            await asyncio.sleep(0.25)

    async def _poll_worker(self, ports: Ports, scheduled: dict[str, int]) -> None:
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    answer = await client.get(
                        f"http://127.0.0.1:{ports.worker}/health/ready", timeout=2.0
                    )
                    scheduled["customers"] = int(answer.json().get("customers_due_later", 0))
                except (httpx.HTTPError, ValueError):
                    pass
                await asyncio.sleep(1.0)

    async def _drain(
        self,
        settings: Settings,
        children: Children,
        follower: Follower,
        tally: Tally,
        inputs: list[Any],
        watched: list[Any],
        clock: AcceleratedClock,
    ) -> Drained:
        """Stop the worker once it has consumed every event, the senders once every dispatched
        touchpoint has an outcome (or the drain deadline has passed), saving what they say of
        themselves before they go."""
        deadline = time.monotonic() + self.options.drain_seconds
        produced = await end_offsets(settings, inputs)
        caught_up = False
        while time.monotonic() < deadline:
            if await group_lag(settings, settings.worker_id, produced) == 0:
                caught_up = True
                break
            await asyncio.sleep(0.25)
        worker_events = await _worker_events(f"http://127.0.0.1:{settings.worker_port}/metrics")
        worker_ready = await _get_json(f"http://127.0.0.1:{settings.worker_port}/health/ready")
        simulated_end = clock.now()
        await children.get("worker").stop(STOP_SECONDS)
        dispatched: Offsets = await end_offsets(
            settings, [tp for tp in watched if tp.topic == settings.topic(TopicRole.DISPATCH)]
        )
        caught_up &= await follower.wait_caught_up(dispatched, deadline)
        await wait_until(lambda: tally.in_flight == 0, deadline)
        senders_ready = await _get_json(f"http://127.0.0.1:{settings.senders_port}/health/ready")
        await children.get("senders").stop(STOP_SECONDS)
        final: Offsets = await end_offsets(settings, watched)
        caught_up &= await follower.wait_caught_up(final, deadline + 10.0)
        return Drained(
            complete=caught_up and tally.in_flight == 0,
            simulated_end=simulated_end,
            worker_events={name: int(value) for name, value in sorted(worker_events.items())},
            customers_scheduled=int(worker_ready.get("customers_due_later", 0)),
            sender_duplicates=int(senders_ready.get("duplicates", 0)),
        )


@dataclass(frozen=True)
class Drained:
    """How the drain went, and what the worker and senders said of themselves before stopping."""

    complete: bool  # every event consumed, every dispatched touchpoint ended, all read
    simulated_end: datetime  # the clock when the worker stopped: nothing was decided later
    worker_events: dict[str, int]  # input records by outcome: used, duplicate, stale, ...
    customers_scheduled: int  # customers with a touchpoint due after the run
    sender_duplicates: int  # dispatch records the senders recognised as already ended


_JOURNEY_COLUMNS = ("dispatched", "delivered", "failed", "suppressed", "expired")
_JOURNEY_ROW = "{:>10}  {:>9}  {:>6}  {:>10}  {:>7}"


class Display:
    """The live view: the simulated clock, events produced, touchpoints and how they ended, and
    on a terminal one row per journey (a log gets one summary line every few seconds)."""

    def __init__(
        self,
        stream: TextIO,
        plan: Plan,
        events: int,
        tally: Tally,
        clock: AcceleratedClock,
        scheduled: Mapping[str, int],
    ) -> None:
        self.progress = Progress(stream)
        self.plan = plan
        self.tally = tally
        self.clock = clock
        self.scheduled = scheduled
        self.phase = "simulating"
        self.produced = 0
        self.closed = False
        self.progress.line("clock", "")  # first row
        self.hours = self.progress.bar("simulated hours", total=round(plan.days * 24))
        self.events = self.progress.bar("events produced", total=events)
        self.dispatched = self.progress.bar("dispatched")
        self.delivered = self.progress.bar("delivered")
        self.failed = self.progress.bar("failed")
        self.suppressed = self.progress.bar("suppressed")
        self.expired = self.progress.bar("expired")

    def sent(self, event: SimEvent) -> None:
        self.produced += 1

    async def run(self) -> None:
        while not self.closed:
            self.render()
            await asyncio.sleep(0.2)

    def close(self) -> None:
        """Draw the final state; the view changes no more."""
        if not self.closed:
            self.update()
            self.closed = True
            self.progress.close()

    def render(self, force: bool = False) -> None:
        if not self.closed:
            self.update()
            self.progress.render(force=force)

    def update(self) -> None:
        now = self.clock.now()
        elapsed = (now - self.plan.start).total_seconds() / 86400.0
        day = min(max(elapsed, 0.0), self.plan.days)
        if elapsed < 0:
            state = f"starts in {-elapsed * 86400 / self.clock.factor:.0f} s"
        else:
            state = f"day {min(int(day) + 1, math.ceil(self.plan.days))} of {self.plan.days:g}"
        self.progress.line("clock", f"{now:%a %Y-%m-%d %H:%M} UTC, {state} ({self.phase})")
        self.hours.set(int(day * 24))
        self.events.set(self.produced)
        totals = self.tally.totals()
        self.dispatched.set(totals.dispatched)
        self.delivered.set(totals.delivered)
        self.failed.set(totals.failed)
        self.suppressed.set(totals.suppressed)
        self.expired.set(totals.expired)
        self.progress.line(
            "in flight",
            f"{self.tally.in_flight} dispatched, no outcome yet; "
            f"{self.scheduled.get('customers', 0)} customers with a touchpoint scheduled",
        )
        if self.progress.tty and self.tally.journeys:
            self.progress.line("by journey", _JOURNEY_ROW.format(*_JOURNEY_COLUMNS))
            for name in sorted(self.tally.journeys):
                counts = self.tally.journeys[name]
                # Indented: a journey may share a name with a row above ("delivered").
                self.progress.line(
                    f"  {name}",
                    _JOURNEY_ROW.format(
                        counts.dispatched,
                        counts.delivered,
                        counts.failed,
                        counts.suppressed,
                        counts.expired,
                    ),
                )


# -- ports and channel settings --------------------------------------------------------------


def choose_ports(settings: Settings, environ: Mapping[str, str]) -> Ports:
    """The configured ports; a default one that is taken is replaced by a free one (and said so),
    a port set explicitly that is taken is an error naming its variable."""
    notes: list[str] = []

    def pick(name: str, configured: int) -> int:
        if _port_free(configured):
            return configured
        if environ.get(name, "").strip():
            raise DemoError(
                f"{name}={configured} is in use by another program: stop it, or set {name} to a "
                "free port"
            )
        port = _free_port()
        notes.append(f"port {configured} ({name}) is in use; using {port} instead")
        return port

    sandbox_http = int(environ.get("AFTERCARE_SANDBOX_HTTP_PORT", "").strip() or SANDBOX.http_port)
    sandbox_smtp = int(environ.get("AFTERCARE_SANDBOX_SMTP_PORT", "").strip() or SANDBOX.smtp_port)
    return Ports(
        worker=pick("AFTERCARE_WORKER_PORT", settings.worker_port),
        senders=pick("AFTERCARE_SENDERS_PORT", settings.senders_port),
        sandbox_http=pick("AFTERCARE_SANDBOX_HTTP_PORT", sandbox_http),
        sandbox_smtp=pick("AFTERCARE_SANDBOX_SMTP_PORT", sandbox_smtp),
        preferences=pick("AFTERCARE_PREFERENCES_PORT", settings.preferences_port),
        notes=notes,
    )


def sandbox_channels(ports: Ports) -> dict[str, str]:
    """Channel settings that reach the sandbox on ``ports``, with its credentials."""
    url = ports.sandbox_url
    return {
        "AFTERCARE_SMTP_HOST": "127.0.0.1",
        "AFTERCARE_SMTP_PORT": str(ports.sandbox_smtp),
        "AFTERCARE_SMTP_TLS": "none",
        "AFTERCARE_SMTP_USERNAME": SANDBOX.smtp_username,
        "AFTERCARE_SMTP_PASSWORD": SANDBOX.smtp_password,
        "AFTERCARE_SMS_BASE_URL": f"{url}/twilio",
        "AFTERCARE_SMS_ACCOUNT_SID": SANDBOX.sms_account_sid,
        "AFTERCARE_SMS_AUTH_TOKEN": SANDBOX.sms_auth_token,
        "AFTERCARE_WHATSAPP_BASE_URL": f"{url}/whatsapp",
        "AFTERCARE_WHATSAPP_TOKEN": SANDBOX.whatsapp_token,
        "AFTERCARE_PUSH_BASE_URL": f"{url}/fcm",
        "AFTERCARE_PUSH_TOKEN": SANDBOX.push_token,
        "AFTERCARE_WEBHOOK_URL": f"{url}/webhook/support",
        "AFTERCARE_WEBHOOK_SECRET": SANDBOX.webhook_secret,
    }


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# -- what the children say about themselves -------------------------------------------------


async def _get_json(url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.get(url, timeout=5.0)
        body = answer.json()
    except (httpx.HTTPError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


async def _worker_events(url: str) -> dict[str, float]:
    """The worker's input records by outcome (used, duplicate, stale, dead_lettered)."""
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.get(url, timeout=5.0)
    except httpx.HTTPError:
        return {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == EVENTS:
                outcome = sample.labels.get("outcome", "unknown")
                totals[outcome] = totals.get(outcome, 0.0) + sample.value
    return totals


# -- the end: summary.json and the table ---------------------------------------------------


def build_summary(
    *,
    run: RunDir,
    settings: Settings,
    options: DemoOptions,
    plan: Plan,
    events: int,
    sent: int,
    customers: int,
    data: ReportData,
    uplift: Uplift,
    files: ReportFiles,
    tally: Tally,
    drained: Drained,
    sandbox_counts: Mapping[str, Any],
    ports: Ports,
    timings: Mapping[str, float],
    children: Mapping[str, Any],
) -> dict[str, Any]:
    journeys: dict[str, dict[str, int]] = {}
    for row in data.steps:
        counts = journeys.setdefault(row.journey, dict.fromkeys(_COLUMNS, 0))
        for column in _COLUMNS:
            counts[column] += getattr(row, column)
    total = data.totals
    accepted = {
        channel: int(results.get("accepted", 0))
        for channel, results in sandbox_counts.items()
        if isinstance(results, dict)
    }
    return {
        "run": {
            "stamp": run.stamp,
            "dir": str(run.path),
            "topic_prefix": settings.topic_prefix,
            "worker_id": settings.worker_id,
            "senders_id": settings.senders_id,
            "bootstrap_servers": settings.bootstrap_servers,
        },
        "options": {**asdict(options), "clock_factor": options.clock_factor},
        "simulated": {
            "start": plan.start.isoformat(),
            "end": drained.simulated_end.isoformat(),
            "days": round((drained.simulated_end - plan.start).total_seconds() / 86400.0, 3),
        },
        "wall_seconds": {name: round(value, 2) for name, value in timings.items()},
        "events": {"customers": customers, "planned": events, "produced": sent},
        "worker_events": drained.worker_events,
        "customers_scheduled_after_the_run": drained.customers_scheduled,
        "journeys": journeys,
        "totals": {column: getattr(total, column) for column in _COLUMNS},
        "delivered_by_channel": dict(data.delivered_by_channel),
        "suppressed_by_reason": dict(sorted(tally.suppressed_by_reason.items())),
        "expired_by_reason": dict(sorted(tally.expired_by_reason.items())),
        "failed_by_reason": dict(sorted(tally.failed_by_reason.items())),
        "duplicates_dropped": {
            "input_events": drained.worker_events.get("duplicate", 0),
            "dispatch_records_at_senders": drained.sender_duplicates,
            "dispatch_records": data.duplicate_dispatches,
            "outcome_records": data.duplicate_outcomes,
        },
        "undecodable_records": tally.undecodable,
        "messages_per_customer_week": {
            label: {"mean": round(load.mean, 3), "p99": load.p99, "max": load.max}
            for label, load in (
                ("as_sent", data.weekly),
                ("without_digests", data.weekly_without_digests),
            )
        },
        "uplift": {
            "window_days": uplift.window.total_seconds() / 86400,
            "steps": headlines(uplift),
            "measurable": [row.verdict for row in uplift.rows if row.measurable],
        },
        "drained": drained.complete,
        "sandbox": {
            "url": ports.sandbox_url,
            "outbox": str(run.outbox),
            "accepted_by_channel": accepted,
        },
        "report": {
            "markdown": str(files.markdown),
            "html": str(files.html),
            "charts": [str(path) for path in files.charts],
        },
        "metrics": {"worker": ports.worker_metrics, "senders": ports.senders_metrics},
        "logs": {
            name: str(run.log(name)) for name in ("sandbox", "senders", "preferences", "worker")
        },
        "children": dict(children),
    }


_COLUMNS = ("dispatched", "delivered", "failed", "suppressed", "expired", "in_flight")


def summary_lines(summary: Mapping[str, Any], data: ReportData, clock_factor: float) -> list[str]:
    headers = ("journey", *_COLUMNS)
    rows = [
        (name, *(str(counts[c]) for c in _COLUMNS))
        for name, counts in sorted(summary["journeys"].items())
    ]
    total = ("total", *(str(summary["totals"][c]) for c in _COLUMNS))
    widths = [max(len(row[i]) for row in [headers, *rows, total]) for i in range(len(headers))]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells)

    rule = "  ".join("-" * width for width in widths)
    simulated = summary["simulated"]
    wall = summary["wall_seconds"]
    duplicates = summary["duplicates_dropped"]
    sandbox = summary["sandbox"]
    lines = [
        "",
        f"Simulated {simulated['start'][:10]} to {simulated['end'][:10]} "
        f"({simulated['days']:.1f} days) in {wall.get('total', 0):.0f} s of wall time; "
        f"{summary['events']['produced']} events from {summary['events']['customers']} customers.",
        "",
        line(headers),
        rule,
        *(line(row) for row in rows),
        rule,
        line(total),
        "",
        "delivered by channel: "
        + (
            ", ".join(f"{k.lower()} {v}" for k, v in summary["delivered_by_channel"].items()) or "-"
        ),
        "suppressed by reason: "
        + (", ".join(f"{k} {v}" for k, v in summary["suppressed_by_reason"].items()) or "-"),
    ]
    if summary["expired_by_reason"]:
        lines.append(
            "expired by reason: "
            + ", ".join(f"{k} {v}" for k, v in summary["expired_by_reason"].items())
        )
    if summary["failed_by_reason"]:
        lines.append(
            "failed by reason: "
            + ", ".join(f"{k} {v}" for k, v in summary["failed_by_reason"].items())
        )
    if data.latency:
        lines.append(
            "dispatch to acceptance, p95: "
            + ", ".join(
                f"{lat.channel.lower()} {format_seconds(lat.p95 / clock_factor)} s"
                for lat in data.latency
            )
            + " (real time)"
        )
    lines += [
        f"duplicates dropped: {duplicates['input_events']} input events (worker), "
        f"{duplicates['dispatch_records_at_senders']} dispatch records (senders), "
        f"{duplicates['outcome_records']} outcome records (report)",
    ]
    unused = [
        f"{summary['worker_events'][outcome]} {what}"
        for outcome, what in (
            ("stale", "stale (older than what the worker already knew of the order)"),
            ("dead_lettered", "dead-lettered (see the dead-letters topic)"),
        )
        if summary["worker_events"].get(outcome)
    ]
    if unused:
        lines.append("input events the worker did not use: " + ", ".join(unused))
    if summary["customers_scheduled_after_the_run"]:
        lines.append(
            f"{summary['customers_scheduled_after_the_run']} customers had touchpoints scheduled "
            "after the simulated span (feedback, cross-sell, ...) when the worker stopped"
        )
    if not summary["drained"]:
        lines.append(
            f"not drained in time: {summary['totals']['in_flight']} touchpoints still in flight "
            "when the run stopped"
        )
    weekly = summary["messages_per_customer_week"]
    sent, alone = weekly["as_sent"], weekly["without_digests"]
    lines.append(
        f"messages per customer per week: mean {sent['mean']:.2f}, p99 {sent['p99']:g}, max "
        f"{sent['max']} (without digests: mean {alone['mean']:.2f}, p99 {alone['p99']:g}, max "
        f"{alone['max']})"
    )
    uplift = summary["uplift"]
    if uplift["steps"]:
        lines += ["", f"uplift against the holdout groups ({uplift['window_days']:g}-day window):"]
        lines += [f"  {line}" for line in uplift["steps"]]
    report = summary["report"]
    lines += [
        "",
        f"report:         {report['html']}",
        f"                {report['markdown']}",
        f"outbox:         {sandbox['outbox']}",
        f"                to browse it: AFTERCARE_SANDBOX_DB={sandbox['outbox']} "
        "aftercare sandbox serve, then aftercare sandbox messages",
        f"summary:        {Path(summary['run']['dir']) / 'summary.json'}",
        f"metrics (live during the run): {summary['metrics']['worker']}, "
        f"{summary['metrics']['senders']}",
    ]
    return lines
