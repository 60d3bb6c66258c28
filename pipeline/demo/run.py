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
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any, TextIO

import httpx
from aiokafka.errors import KafkaError

from pipeline import localkafka
from pipeline.analytics.report import write_report
from pipeline.analytics.uplift import Behaviour, measure
from pipeline.clock import AcceleratedClock
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.demo.children import Child, ChildError, Children, ChildSpec
from pipeline.demo.display import Display
from pipeline.demo.options import DemoError, DemoOptions
from pipeline.demo.ports import Ports, choose_ports, sandbox_channels
from pipeline.demo.runs import RunDir, delete_earlier_runs, demo_prefix
from pipeline.demo.summary import Drained, build_summary, summary_lines
from pipeline.demo.watch import (
    Follower,
    Offsets,
    Tally,
    end_offsets,
    group_lag,
    wait_until,
)
from pipeline.journeysfile import JourneysFileError, load_journeys
from pipeline.names import COPARTITIONED_ROLES, TopicRole
from pipeline.simulate.population import Plan, SimEvent, count_events, simulate
from pipeline.simulate.producer import produce
from pipeline.topics import ensure_topics, topic_partitions

# Real seconds from starting the children to the first simulated instant: enough for the worker
# to join its group and recover its (empty) table on a busy laptop. Simulated time before then
# passes without events, so a generous lead costs only waiting.
CLOCK_LEAD_SECONDS = 10.0
STOP_SECONDS = 30.0  # SIGTERM to SIGKILL, per child


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
        data = tally.counting.data()
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
            worker_events=dict(worker_ready.get("events", {})),
            customers_scheduled=int(worker_ready.get("customers_due_later", 0)),
            sender_duplicates=int(senders_ready.get("duplicates", 0)),
        )


# -- what the children say about themselves -------------------------------------------------


async def _get_json(url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.get(url, timeout=5.0)
        body = answer.json()
    except (httpx.HTTPError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}
