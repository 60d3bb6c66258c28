"""The ``aftercare`` command.

    aftercare broker start|stop|status    the local Kafka broker (not with KAFKA_BOOTSTRAP_SERVERS)
    aftercare topics create|check         make and check every topic
    aftercare produce TOPIC               JSON lines on stdin -> validated Avro records on TOPIC
    aftercare consume TOPIC               decoded records of TOPIC as JSON lines
    aftercare config                      every setting, its value and what it does
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
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pipeline import localkafka
from pipeline.analytics.cli import add_commands as add_analytics_commands
from pipeline.analytics.customer import add_commands as add_customer_commands
from pipeline.config import VARIABLES, ConfigError, Settings
from pipeline.journeys.rules import JourneysFileError
from pipeline.names import TopicRole
from pipeline.sandbox.cli import add_commands as add_sandbox_commands
from pipeline.simulate.cli import add_commands as add_simulate_commands
from pipeline.topics import TopicLayoutError, check_topics, ensure_topics


class CommandError(Exception):
    """A failure the user can fix; printed as one line, exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        result: int = args.handler(settings, args)
        return result
    except (
        CommandError,
        ConfigError,
        JourneysFileError,
        localkafka.LocalBrokerError,
        TopicLayoutError,
    ) as exc:
        print(f"aftercare: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aftercare",
        description="Post-purchase journey pipeline on Kafka.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    broker = commands.add_parser(
        "broker",
        help="the local Kafka broker for development",
        description="Start, stop or show the local Apache Kafka broker (KRaft) on 127.0.0.1: "
        "one node, or a cluster of --brokers N nodes for trying faults.",
    )
    broker.add_argument("action", choices=["start", "stop", "status"])
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

    topics = commands.add_parser("topics", help="create or check Aftercare's topics")
    topics.add_argument("action", choices=["create", "check"])
    topics.set_defaults(handler=_topics)

    produce = commands.add_parser(
        "produce",
        help="encode JSON lines from stdin and produce them (validated as the worker would)",
    )
    produce.add_argument("topic", help="a topic role (purchases, shipments, ...) or a topic name")
    produce.set_defaults(handler=_produce)

    consume = commands.add_parser("consume", help="print decoded records of a topic as JSON lines")
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

    config = commands.add_parser("config", help="print every setting and its current value")
    config.set_defaults(handler=_config)

    worker = commands.add_parser(
        "worker", help="the journey worker: input topics in, touchpoints to dispatch"
    )
    worker.set_defaults(handler=_worker)

    add_sandbox_commands(commands)
    add_simulate_commands(commands)
    add_analytics_commands(commands)
    add_customer_commands(commands)

    senders = commands.add_parser(
        "senders", help="the channel senders: dispatch in, messages out, outcomes to deliveries"
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
    role, topic = _resolve_topic(settings, args.topic)
    return asyncio.run(_produce_lines(settings, role, topic))


async def _produce_lines(settings: Settings, role: TopicRole, topic: str) -> int:
    from aiokafka import AIOKafkaProducer

    from pipeline.clock import SystemClock
    from pipeline.codec import CodecError, SchemaSet
    from pipeline.intake import DeadLetter, SourceRecord, admit
    from pipeline.jsonio import from_json
    from pipeline.names import INPUT_ROLES, RECORD_OF_TOPIC

    schemas = SchemaSet.load()
    full_name = RECORD_OF_TOPIC[role]
    clock = SystemClock()
    producer = AIOKafkaProducer(
        client_id=f"{settings.client_id}-cli", acks="all", **settings.kafka_client_kwargs()
    )
    await producer.start()
    sent = refused = 0
    try:
        for number, line in enumerate(sys.stdin, start=1):
            if not line.strip():
                continue
            try:
                record = from_json(schemas.current(full_name).parsed, json.loads(line))
                value = schemas.encode(full_name, record)
            except (ValueError, CodecError) as exc:
                print(f"line {number}: not sent: {exc}", file=sys.stderr)
                refused += 1
                continue
            key = str(record.get("customer_id", "")).encode("utf-8")
            if role in INPUT_ROLES:
                # The same rules the worker applies, so a producer learns of a bad event here.
                verdict = admit(
                    schemas,
                    role,
                    SourceRecord(topic, -1, -1, key, value),
                    now=clock.now(),
                    max_future=timedelta(seconds=settings.max_future_seconds),
                    consumer="cli",
                )
                if isinstance(verdict, DeadLetter):
                    print(f"line {number}: not sent: {verdict.reason}", file=sys.stderr)
                    refused += 1
                    continue
            await producer.send_and_wait(topic, value=value, key=key)
            sent += 1
    finally:
        await producer.stop()
    print(f"sent {sent} record(s) to {topic}" + (f", refused {refused}" if refused else ""))
    return 1 if refused else 0


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
    await consumer.start()
    try:
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


def _secret(name: str) -> bool:
    """Settings whose values are never printed: passwords, keys, tokens and secrets."""
    return "PASSWORD" in name or name.endswith(("_KEY", "_TOKEN", "_SECRET"))


def _config(settings: Settings, args: argparse.Namespace) -> int:
    for variable in VARIABLES:
        value = os.environ.get(variable.name, "")
        if _secret(variable.name) and value:
            value = "***"
        shown = value or (f"{variable.default} (default)" if variable.default else "(empty)")
        print(f"{variable.name}={shown}\n    {variable.doc}")
    print(f"\nbootstrap servers in use: {settings.bootstrap_servers}")
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
