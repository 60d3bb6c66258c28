"""``aftercare simulate``: produce a simulated population's events to the input topics.

    aftercare simulate [--customers N] [--days D] [--seed S] [--start ISO]
                       [--rate EVENTS_PER_S] [--factor F] [--dry-run]

Without pacing options every event is produced as fast as the broker takes it. ``--factor F``
paces them on an accelerated clock on which simulated time begins at ``--start`` as the command
starts and runs F times faster than real time: each event is produced when that clock reaches
it (run the worker on the same clock; the command prints the settings that say so). ``--rate``
caps real events per second. ``--dry-run`` prints the events as JSON lines instead, one envelope
per line with ``topic`` (a topic role) and ``record``, in time order, which ``aftercare produce``
takes as they are (without TOPIC each to its topic; with TOPIC only those of that topic):

    aftercare simulate --dry-run | head
    aftercare simulate --dry-run | aftercare produce             # every event to its topic
    aftercare simulate --dry-run | aftercare produce purchases   # the purchases alone
    aftercare simulate --dry-run | jq -c 'select(.record.type == "ORDER_PLACED")' \\
        | aftercare produce

The same options always give the same events (and the same journeys file: the customers react to
the messages they get, so those in its holdout groups, see AFTERCARE_JOURNEYS_FILE, behave as
customers who did not get them). ``--start`` defaults to AFTERCARE_CLOCK_START when that is set,
else to 2026-03-02T08:00Z. A progress bar on stderr counts the events acknowledged;
Ctrl-C stops after flushing what was produced. Every failure ends in one line on stderr that says
what went wrong and what to do, and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.cliargs import instant, positive
from pipeline.names import INPUT_ROLES
from pipeline.simulate.population import Plan, SimEvent, count_events, simulate

if TYPE_CHECKING:
    from pipeline.clock import Clock
    from pipeline.config import Settings

DEFAULTS = Plan()


class SimulateCommandError(Exception):
    """A failure the user can fix; printed as one line, exit status 1."""


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``simulate`` on the ``aftercare`` command's subparsers."""
    simulate_parser = subparsers.add_parser(
        "simulate",
        help="produce the events of a simulated population of customers to the input topics",
        description=(
            "Produce the purchases, shipments, app usage and preference changes of a seeded, "
            "reproducible population of customers to the input topics."
        ),
    )
    simulate_parser.add_argument(
        "--customers",
        type=_count,
        default=DEFAULTS.customers,
        help=f"how many customers (default {DEFAULTS.customers})",
    )
    simulate_parser.add_argument(
        "--days",
        type=positive,
        default=DEFAULTS.days,
        help=f"simulated days from the start (default {DEFAULTS.days:g})",
    )
    simulate_parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULTS.seed,
        help=f"the same seed gives the same population (default {DEFAULTS.seed})",
    )
    simulate_parser.add_argument(
        "--start",
        type=instant,
        help="the first simulated instant, ISO 8601 with a time zone (default "
        "AFTERCARE_CLOCK_START, else 2026-03-02T08:00Z)",
    )
    simulate_parser.add_argument(
        "--rate", type=positive, help="at most this many events per real second"
    )
    simulate_parser.add_argument(
        "--factor",
        type=positive,
        help="pace events on an accelerated clock: this many simulated seconds per real second "
        "(default: unpaced)",
    )
    simulate_parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the events as JSON lines instead of producing them",
    )
    simulate_parser.set_defaults(handler=_guarded)


def _guarded(settings: Settings, args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError

    from pipeline.topics import TopicLayoutError

    try:
        return _simulate(settings, args)
    except (SimulateCommandError, TopicLayoutError) as exc:
        print(f"aftercare simulate: {exc}", file=sys.stderr)
        return 1
    except KafkaError as exc:
        print(
            f"aftercare simulate: Kafka at {settings.bootstrap_servers} failed: {exc!r}; check "
            "that it runs (`aftercare broker status`) and that the topics exist "
            "(`aftercare topics create`)",
            file=sys.stderr,
        )
        return 1


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.journeysfile import JourneysFileError, load_journeys

    try:
        journeys = load_journeys(settings.journeys_file or None)
    except JourneysFileError as exc:
        raise SimulateCommandError(f"the journeys file: {exc}") from None
    try:
        plan = Plan(
            customers=args.customers,
            days=args.days,
            seed=args.seed,
            start=args.start or settings.clock_start or DEFAULTS.start,
            holdouts=journeys.holdouts,
        )
    except ValueError as exc:  # e.g. more days than a plan holds
        raise SimulateCommandError(str(exc)) from None
    if args.dry_run:
        return _print(plan)
    return asyncio.run(_produce(settings, plan, factor=args.factor, rate=args.rate))


def _print(plan: Plan) -> int:
    from pipeline.jsonio import to_json

    try:
        for event in simulate(plan):
            line = {"topic": event.role.value, "record": to_json(event.record)}
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader has had enough (`| head`): not an error. Python would complain again at
        # exit while flushing stdout, so point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


async def _produce(
    settings: Settings, plan: Plan, *, factor: float | None, rate: float | None
) -> int:
    from pipeline.clock import AcceleratedClock
    from pipeline.progress import Progress
    from pipeline.simulate.producer import produce
    from pipeline.topics import check_topics

    await check_topics(settings)
    clock: Clock | None = None
    if factor is not None:
        shared = settings.clock_start == plan.start and settings.clock_factor == factor
        accelerated = AcceleratedClock(plan.start, factor, settings.clock_epoch if shared else None)
        clock = accelerated
        print(
            f"simulated time {plan.start.isoformat()} at real Unix time {accelerated.epoch:.3f}, "
            f"x{factor:g}; a worker on the same clock has AFTERCARE_CLOCK_FACTOR={factor:g} "
            f"AFTERCARE_CLOCK_START={plan.start.isoformat()} "
            f"AFTERCARE_CLOCK_EPOCH={accelerated.epoch:.3f}",
            file=sys.stderr,
        )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    handled = []
    for number in signals:
        try:
            loop.add_signal_handler(number, stop.set)
            handled.append(number)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread; Windows
            pass
    by_topic: Counter[str] = Counter()
    with Progress(sys.stderr) as progress:
        bar = progress.bar("events", total=count_events(plan))

        def sent(event: SimEvent) -> None:
            bar.advance()
            by_topic[event.role.value] += 1

        def show() -> None:
            if clock is not None:
                progress.line(
                    "clock", f"{clock.now():%a %Y-%m-%d %H:%M:%S} UTC (x{clock.factor:g})"
                )
            progress.line("topics", _by_topic(by_topic) or "-")
            progress.render()

        refresh = asyncio.create_task(_every(progress.interval, show))
        try:
            count = await produce(
                settings, simulate(plan), clock=clock, rate=rate, on_sent=sent, stop=stop
            )
        finally:
            refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresh
            for number in handled:
                loop.remove_signal_handler(number)
        if not stop.is_set():
            bar.set(count, total=count)  # the total was an estimate for large populations
        show()
    verb = "stopped after producing" if stop.is_set() else "produced"
    topics = _by_topic(by_topic, settings)
    print(f"{verb} {count:,} events of {plan.customers:,} customers: {topics}")
    return 130 if stop.is_set() else 0


async def _every(seconds: float, action: Callable[[], None]) -> None:
    while True:
        action()
        await asyncio.sleep(seconds)


def _by_topic(counts: Counter[str], settings: Settings | None = None) -> str:
    """``purchases 12, shipments 30, ...``; with ``settings``, the topics' full names."""
    return ", ".join(
        f"{settings.topic(role) if settings else role.value} {counts[role.value]:,}"
        for role in INPUT_ROLES
        if counts[role.value]
    )


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value
