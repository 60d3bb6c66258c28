"""The ``aftercare`` command.

    aftercare broker start|stop|status    the local Kafka broker (not with KAFKA_BOOTSTRAP_SERVERS)
    aftercare topics create|check         make and check every topic
    aftercare produce [TOPIC]             JSON lines on stdin -> validated Avro records on TOPIC
    aftercare consume TOPIC               decoded records of TOPIC as JSON lines
    aftercare config [--markdown]         every setting, its value and what it does
    aftercare journeys check [FILE]       check a journeys file and its templates, offline
    aftercare worker                      the journey worker
    aftercare senders                     the channel senders
    aftercare sandbox ...                 the provider sandbox, its outbox and its faults
    aftercare simulate                    a simulated population's events onto the input topics
    aftercare deliveries [--follow]       a decoded tail of `deliveries` (--json for jq)
    aftercare report                      the analysts' report (Markdown, HTML, PNG charts)
    aftercare run                         the whole pipeline as a demo (what `make run` calls)

Every failure ends in one line on stderr that says what went wrong and what to do, and a non-zero
exit status; tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from pipeline import localkafka
from pipeline.analytics.cli import add_commands as add_analytics_commands
from pipeline.analytics.customer import add_commands as add_customer_commands
from pipeline.config import ConfigError, Environment, Settings, listing, markdown_table
from pipeline.journeysfile import JourneysFileError, load_journeys
from pipeline.names import TopicRole
from pipeline.sandbox.cli import add_commands as add_sandbox_commands
from pipeline.simulate.cli import add_commands as add_simulate_commands
from pipeline.templates.render import TemplateError
from pipeline.topics import TopicLayoutError, check_topics, ensure_topics


class CommandError(Exception):
    """A failure the user can fix; printed as one line, exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from aiokafka.errors import KafkaConnectionError

    from pipeline.logs import install_bootstrap_filter

    install_bootstrap_filter()
    settings: Settings | None = None
    try:
        settings = Settings.from_env()
        result: int = args.handler(settings, args)
        return result
    except (
        CommandError,
        ConfigError,
        JourneysFileError,
        localkafka.LocalBrokerError,
        TemplateError,
        TopicLayoutError,
    ) as exc:
        print(f"aftercare: {exc}", file=sys.stderr)
        return 1
    except KafkaConnectionError as exc:
        assert settings is not None  # only a command with settings connects
        print(f"aftercare: {_unreachable(settings, exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _unreachable(settings: Settings, exc: Exception) -> str:
    """One line for a cluster that did not answer: the servers tried and what to check."""
    tried = settings.bootstrap_servers
    if settings.uses_local_broker:
        hint = (
            "the local broker is not running: start it with `aftercare broker start`, or set "
            "KAFKA_BOOTSTRAP_SERVERS to your cluster"
        )
    else:
        hint = (
            "check KAFKA_BOOTSTRAP_SERVERS (host:port of brokers reachable from here: DNS, "
            "firewall, the listener the brokers advertise) and that KAFKA_SECURITY_PROTOCOL "
            f"({settings.security.protocol}) is what those listeners speak"
        )
    from pipeline.logs import bootstrap_failures

    failures = bootstrap_failures()
    if failures:
        detail = "; ".join(f"{server}: {why}" for server, why in failures.items())
    else:
        detail = " ".join(str(exc).split()) or type(exc).__name__
    return f"no Kafka broker answered at {tried} ({detail}); {hint}"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aftercare")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aftercare",
        description="Post-purchase journey pipeline on Kafka: input events in, timed "
        "touchpoints out over email, SMS, WhatsApp, push and in-app, every outcome recorded. "
        "Settings come from the environment (`aftercare config` lists them).",
    )
    parser.add_argument(
        "--version", action="version", version=f"aftercare {_version()}", help="print the version"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    broker = commands.add_parser(
        "broker",
        help="the local Kafka broker for development",
        description="Start, stop or show the local Apache Kafka broker (KRaft) on 127.0.0.1: "
        "one node, or a cluster of --brokers N nodes for trying faults.",
    )
    broker.add_argument(
        "action",
        choices=["start", "stop", "status"],
        help="start (fetching the jars from Maven Central the first time), stop, or status "
        "(exit 3 when not running)",
    )
    broker.add_argument(
        "--brokers",
        type=int,
        metavar="N",
        help="nodes in the cluster (default: AFTERCARE_BROKER_NODES, 1)",
    )
    broker.add_argument(
        "--node", type=int, metavar="I", help="stop: only node I of the cluster (from 1)"
    )
    broker.add_argument(
        "--kill", action="store_true", help="stop: SIGKILL at once (a crash), not a clean stop"
    )
    broker.set_defaults(handler=_broker)

    topics = commands.add_parser(
        "topics",
        help="create or check Aftercare's topics",
        description="Create every topic Aftercare uses that is missing, with the partitions, "
        "replication and cleanup policy it needs, or check an existing layout (the input topics "
        "and due-notices co-partitioned, compacted topics compacted) without changing it.",
    )
    topics.add_argument(
        "action",
        choices=["create", "check"],
        help="create: make what is missing, then check; check: only check",
    )
    topics.set_defaults(handler=_topics)

    produce = commands.add_parser(
        "produce",
        help="encode JSON lines from stdin and produce them (validated as the worker would)",
        description="Send JSON lines from stdin: bare records to TOPIC, or envelopes "
        '{"topic": ..., "record": {...}} (as `aftercare simulate --dry-run` prints them) each '
        "to its input topic; with TOPIC, envelopes of other topics are skipped.",
    )
    produce.add_argument(
        "topic",
        nargs="?",
        help="a topic role (purchases, shipments, ...) or a topic name; without it every line "
        "is an envelope",
    )
    produce.set_defaults(handler=_produce)

    consume = commands.add_parser(
        "consume",
        help="print decoded records of a topic as JSON lines",
        description="Read a topic from its beginning and print each record decoded from Avro as "
        'one JSON line {"partition", "offset", "record"} (or "error" and "reason" for bytes '
        "that do not decode); without --follow it stops when the topic is idle.",
    )
    consume.add_argument("topic", help="a topic role (deliveries, dead-letters, ...) or name")
    consume.add_argument(
        "--follow", action="store_true", help="keep waiting for new records (Ctrl-C ends)"
    )
    consume.add_argument(
        "--idle-seconds",
        type=float,
        default=2.0,
        help="without --follow, stop after this long without a new record (default 2)",
    )
    consume.set_defaults(handler=_consume)

    config = commands.add_parser(
        "config",
        help="print every setting and its current value",
        description="Print every environment variable Aftercare reads: its value (secrets as "
        "**********, defaults marked) and what it does. A setting Aftercare cannot use is "
        "refused here as at any command's start, one line naming the variable.",
    )
    config.add_argument(
        "--markdown",
        action="store_true",
        help="print the table of every variable, its default and meaning (the README's)",
    )
    config.set_defaults(handler=_config)

    journeys = commands.add_parser(
        "journeys",
        help="check a journeys file and its templates, offline",
        description="Check a journeys file as the worker and the senders would at start, "
        "without a broker: the YAML, every rule, and that every step has a template for each "
        "of its channels that compiles; each problem as file:line.",
    )
    journeys.add_argument("action", choices=["check"], help="check: the only action")
    journeys.add_argument(
        "file",
        nargs="?",
        help="the journeys file (default: AFTERCARE_JOURNEYS_FILE, else the shipped defaults)",
    )
    journeys.set_defaults(handler=_journeys)

    worker = commands.add_parser(
        "worker",
        help="the journey worker: input topics in, touchpoints to dispatch",
        description="Run one journey worker: consume the input topics in event-time order, "
        "keep each customer's journey state in a changelogged table, and produce touchpoint "
        "commands to dispatch when they fall due. Workers with the same AFTERCARE_WORKER_ID "
        "share the partitions. Health and /metrics on AFTERCARE_WORKER_PORT.",
    )
    worker.set_defaults(handler=_worker)

    add_sandbox_commands(commands)
    add_simulate_commands(commands)
    add_analytics_commands(commands)
    add_customer_commands(commands)

    senders = commands.add_parser(
        "senders",
        help="the channel senders: dispatch in, messages out, outcomes to deliveries",
        description="Run one senders process: consume dispatch, render each touchpoint, send it "
        "over its channels (falling back in order, retrying within its validity), and publish "
        "every outcome to deliveries, once per touchpoint. Processes with the same "
        "AFTERCARE_SENDERS_ID share the partitions. Health and /metrics on "
        "AFTERCARE_SENDERS_PORT.",
    )
    senders.set_defaults(handler=_senders)

    preferences = commands.add_parser(
        "preferences-api",
        help="the preferences service: one-click unsubscribe pages and the preferences API",
        description="Serve the signed one-click unsubscribe links of engagement and marketing "
        "mail (RFC 8058) and a JSON API for one customer's consent and opt-ins on "
        "AFTERCARE_PREFERENCES_PORT; every change is published to the preferences topic as the "
        "customer's complete record.",
    )
    preferences.set_defaults(handler=_preferences)

    run = commands.add_parser(
        "run",
        help="the main job: what `make run` runs",
        description="The whole pipeline as a demo: a simulated population's events flow through "
        "the broker, the worker and the senders into the provider sandbox on an accelerated "
        "clock; a live view while it runs, a report and summary.json at the end.",
    )
    run.add_argument("--customers", type=int, default=400, help="simulated customers (default 400)")
    run.add_argument("--days", type=float, default=45.0, help="simulated days (default 45)")
    run.add_argument(
        "--minutes",
        type=float,
        default=2.0,
        help="real minutes the simulated days take (default 2); sets the clock's speed",
    )
    run.add_argument(
        "--seed", type=int, default=42, help="seed of the simulation: same seed, same events"
    )
    run.add_argument(
        "--startup-seconds",
        type=float,
        default=90.0,
        help="how long the worker, senders and sandbox may take to be ready (default 90)",
    )
    run.add_argument(
        "--drain-seconds",
        type=float,
        default=90.0,
        help="how long to wait, after the simulated span, for every touchpoint to end (default 90)",
    )
    run.set_defaults(handler=_run)
    return parser


def _broker(settings: Settings, args: argparse.Namespace) -> int:
    if settings.uses_local_broker is False:
        print(
            f"KAFKA_BOOTSTRAP_SERVERS={settings.bootstrap_servers} is set: using that cluster, "
            "no local broker is managed."
        )
        return 0
    broker = settings.local_broker
    if args.brokers is not None:
        if args.brokers < 1:
            print("aftercare: error: --brokers must be 1 or more", file=sys.stderr)
            return 2
        broker = broker.with_nodes(args.brokers)
    if args.action == "start":
        state = localkafka.start(broker)
        pids = ", ".join(str(n.pid) for n in state.nodes)
        print(f"Kafka is running at {state.bootstrap} (pid {pids}); log: {state.log_path}")
        if broker.nodes > 1 and settings.bootstrap_servers != state.bootstrap:
            print(f"use it with: export KAFKA_BOOTSTRAP_SERVERS={state.bootstrap}")
    elif args.action == "stop":
        what = f"node {args.node} of " if args.node else ""
        if localkafka.stop(broker, node=args.node, kill=args.kill):
            verb = "killed" if args.kill else "stopped"
            print(f"{verb} {what}the local broker at {broker.bootstrap}")
        else:
            print(f"no local broker was running at {broker.bootstrap}")
    else:
        state = localkafka.status(broker)
        for node in state.nodes if broker.nodes > 1 else ():
            shown = f"running (pid {node.pid})" if node.running else "not running"
            print(f"node {node.node} at {node.bootstrap}: {shown}; data: {node.data_dir}")
        if state.running:
            pids = ", ".join(str(n.pid) for n in state.nodes)
            print(f"running at {state.bootstrap} (pid {pids}); log: {state.log_path}")
        else:
            print(f"not running (would listen on {state.bootstrap}); data: {state.data_dir}")
            return 3
    return 0


def _topics(settings: Settings, args: argparse.Namespace) -> int:
    action = ensure_topics if args.action == "create" else check_topics
    states = asyncio.run(action(settings))
    width = max(len(state.name) for state in states)
    for state in states:
        note = "created" if state.created else "exists"
        print(
            f"{state.name:<{width}}  {state.partitions:>3} partitions  "
            f"{state.replicas} replicas  cleanup.policy={state.cleanup_policy:<7}  {note}"
        )
    print(f"the input topics are co-partitioned ({states[0].partitions} partitions each)")
    return 0


def _resolve_topic(settings: Settings, given: str) -> tuple[TopicRole, str]:
    for role in TopicRole:
        if given in (role.value, settings.topic(role)):
            return role, settings.topic(role)
    known = ", ".join(settings.topic(role) for role in TopicRole)
    raise CommandError(f"{given!r} is not one of Aftercare's topics ({known})")


def _produce(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.produce import produce_stdin

    role = None if args.topic is None else _resolve_topic(settings, args.topic)[0]
    return asyncio.run(produce_stdin(settings, role))


def _consume(settings: Settings, args: argparse.Namespace) -> int:
    role, topic = _resolve_topic(settings, args.topic)
    try:
        return asyncio.run(_consume_lines(settings, role, topic, args.follow, args.idle_seconds))
    except KeyboardInterrupt:
        return 0


async def _consume_lines(
    settings: Settings, role: TopicRole, topic: str, follow: bool, idle_seconds: float
) -> int:
    from aiokafka import AIOKafkaConsumer

    from pipeline.codec import DecodeError, SchemaSet
    from pipeline.jsonio import to_json
    from pipeline.names import RECORD_OF_TOPIC

    schemas = SchemaSet.load()
    full_name = RECORD_OF_TOPIC[role]
    consumer = AIOKafkaConsumer(
        topic,
        client_id=f"{settings.client_id}-cli",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **settings.kafka_client_kwargs(),
    )
    try:
        await consumer.start()  # inside: a consumer that never connected is closed too
        while True:
            batches = await consumer.getmany(timeout_ms=int(idle_seconds * 1000))
            if not batches and not follow:
                return 0
            for messages in batches.values():
                for message in messages:
                    where = {"partition": message.partition, "offset": message.offset}
                    try:
                        decoded = schemas.decode(message.value, full_name)
                        line: dict[str, Any] = {**where, "record": to_json(decoded.record)}
                    except DecodeError as exc:
                        line = {**where, "error": exc.kind.value, "reason": exc.reason}
                    print(json.dumps(line, ensure_ascii=False), flush=True)
    finally:
        await consumer.stop()


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.worker.main import run_worker

    return run_worker(settings)


def _senders(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.senders.main import run_senders

    return run_senders(settings)


def _preferences(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.preferences.service import run_preferences

    return run_preferences(settings)


def _config(settings: Settings, args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table(), end="")
        return 0
    print("\n".join(listing(Environment.read())))
    print(f"\nbootstrap servers in use: {settings.bootstrap_servers}")
    return 0


def _journeys(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.templates.render import Renderer

    book = load_journeys(args.file or settings.journeys_file or None)
    files = Renderer().check(book)
    steps = sum(len(journey.steps) for journey in book.journeys)
    print(
        f"{book.source}: {len(book.journeys)} journeys, {steps} steps, every template there "
        f"({files} template files checked)"
    )
    return 0


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.demo import DemoError, DemoOptions, run_demo

    options = DemoOptions(
        customers=args.customers,
        days=args.days,
        minutes=args.minutes,
        seed=args.seed,
        startup_seconds=args.startup_seconds,
        drain_seconds=args.drain_seconds,
    )
    try:
        return run_demo(settings, options)
    except DemoError as exc:
        raise CommandError(str(exc)) from None


if __name__ == "__main__":
    raise SystemExit(main())
