"""The worker: one Faust app that wires the journey processor to Kafka. Nothing else lives here.

- one loop (:mod:`pipeline.worker.loop`) takes the four input topics and ``due-notices``
  (co-partitioned, raw bytes) a fetch at a time from the consumer (:mod:`pipeline.worker.feed`),
  puts them in event-time order and hands them to
  :class:`~pipeline.worker.processor.JourneyProcessor` in batches;
- one table, ``customers``, holds each customer's journey state (:mod:`pipeline.worker.tables`);
- after every recovery the due index is rebuilt from the table's active partitions;
- one task publishes due-notices for what the index says is due (:mod:`pipeline.worker.scheduler`);
- the worker commits its input offsets itself, never past a record it has not finished
  (:mod:`pipeline.worker.offsets`); Faust's acknowledgements are off for those topics;
- a :class:`~pipeline.supervision.Watchdog` ends the process, non-zero, if one of the worker's loops
  dies;
- its pages (:mod:`pipeline.worker.web`) serve the metrics and answer Kubernetes' probes.

Run it with ``aftercare worker``; scale it by starting more (see the README).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, cast

import faust
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from pipeline.clock import Clock
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.intake import Intake
from pipeline.journeys.engine import JourneyEngine
from pipeline.journeys.rules import JourneyBook
from pipeline.metrics import WorkerMetrics
from pipeline.names import COPARTITIONED_ROLES, RECORD_OF_TOPIC, TopicRole
from pipeline.supervision import Watchdog
from pipeline.worker import scheduler
from pipeline.worker.committer import Committer
from pipeline.worker.feed import Feed, FeedConsumer, FeedTransport
from pipeline.worker.loop import BATCH_MAX, JourneyLoop
from pipeline.worker.offsets import OffsetLedger
from pipeline.worker.ordering import EventTimeOrder
from pipeline.worker.processor import JourneyProcessor
from pipeline.worker.statecache import StateCache
from pipeline.worker.tables import FaustTable, active_rows, customers_table
from pipeline.worker.web import STALL_SECONDS, add_pages

log = logging.getLogger(__name__)

DUE_NOTICE = RECORD_OF_TOPIC[TopicRole.DUE_NOTICES]
FEED_LIMIT = 4 * BATCH_MAX  # fetched records waiting beyond this: the fetcher waits
# An input with records on the broker not yet fetched (after a restart or a rebalance, or while its
# leader moves to another broker) is waited for this long before the others of its partition
# number go on without it. Half a second was too short under faults: in the fault suite a worker
# restarted on two busy cores got its purchases a second before the preferences that came first,
# and decided a PAYMENT_FAILED without the SMS consent it had. Kafka Streams waits for a lagging
# input without a bound (KIP-695); this one bounds it, so a partition that cannot be read does not
# hold its customers for ever, at the time after which the worker reports itself not ready.
LAGGING_WAIT_SECONDS = STALL_SECONDS


class FaustPublisher:
    """The intake's and the processor's publisher, on the Faust app's own producer."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, **kwargs: Any
    ) -> Awaitable[Any]:
        partition = kwargs.get("partition")
        return await self.app.producer.send(topic, key, value, partition, None, None)

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, **kwargs: Any
    ) -> Any:
        return await self.app.producer.send_and_wait(topic, key, value, None, None, None)


class WorkerApp(faust.App):
    """Faust's app whose consumer hands the worker's input topics to a :class:`Feed`."""

    feed: Feed | None = None

    def _new_transport(self) -> Any:
        return FeedTransport(self.conf.broker_consumer, self)

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        cast(FeedConsumer, consumer).feed = self.feed
        return consumer


def broker_urls(settings: Settings) -> list[str]:
    return [f"kafka://{host.strip()}" for host in settings.bootstrap_servers.split(",")]


def broker_credentials(settings: Settings) -> Any:
    security = settings.security
    if security.protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password.get_secret_value(),
            mechanism=security.sasl_mechanism,
            ssl_context=security.ssl_context(),
        )
    return security.ssl_context()  # an SSL context, or None for PLAINTEXT


def faust_app(settings: Settings) -> WorkerApp:
    """The Faust app of a worker, configured from ``settings``."""
    return WorkerApp(
        settings.worker_id,
        broker=broker_urls(settings),
        broker_credentials=broker_credentials(settings),
        store="rocksdb://",
        datadir=str(settings.state_dir),
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.input_partitions,
        topic_replication_factor=settings.replication_factor,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        # How soon the group notices a worker that died without leaving (SIGKILL, a lost node)
        # and hands its partitions to the others.
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.session_timeout_seconds / 5,
        # Static membership: a worker restarted under the same id within the session timeout
        # takes its partitions back without a rebalance (it does not leave the group on stop).
        consumer_group_instance_id=settings.instance_id or None,
        web_port=settings.worker_port,
        web_bind=settings.bind_address,  # 0.0.0.0 in a container: probes come from the kubelet
        # Recovery reads the changelog one fetch at a time, and Faust pauses the input partitions
        # only in its own books: once a fetch's records sit waiting for the table, aiokafka
        # long-polls the empty input partitions, and the next changelog fetch waits behind that
        # poll. With Faust's 1.5 s poll and the default 1 MiB per partition that stall came every
        # ~2,000 records and capped recovery near 2,500 records/s; 4 MiB brings four times the
        # records per stall (a response stays under aiokafka's 50 MiB cap). The poll is now
        # feed.FETCH_WAIT_MS.
        consumer_max_fetch_size=4 * 1024 * 1024,
        # aiokafka keeps one produce request in flight per broker and one open batch per
        # partition; a full batch holds the next send until the request before it is answered.
        # At Faust's 16 KiB a batch holds about eight changelog states: a burst of 3,000 wakes
        # took 0.23 s (p99) only to hand its due-notices over. 256 KiB: 0.05 s, and about a
        # tenth less CPU per wake (the timers benchmark, 100,000 pending).
        producer_max_batch_size=256 * 1024,
    )


def create_app(
    settings: Settings,
    book: JourneyBook,
    clock: Clock,
    schemas: SchemaSet | None = None,
    watchdog: Watchdog | None = None,
) -> faust.App:
    schemas = schemas or SchemaSet.load()
    copartitioned = {settings.topic(role): role for role in COPARTITIONED_ROLES}
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    feed = Feed(copartitioned, FEED_LIMIT)
    app = faust_app(settings)
    app.feed = feed
    publisher = FaustPublisher(app)
    index = scheduler.DueIndex()
    metrics = WorkerMetrics()
    processor = JourneyProcessor(
        settings=settings,
        schemas=schemas,
        engine=JourneyEngine(book),
        clock=clock,
        intake=Intake(
            schemas=schemas,
            topics=copartitioned,
            dead_letter_topic=settings.topic(TopicRole.DEAD_LETTERS),
            publisher=publisher,
            clock=clock,
            max_future=timedelta(seconds=settings.max_future_seconds),
        ),
        publisher=publisher,
        index=index,
        metrics=metrics,
        cache=StateCache(settings.state_cache_customers),
    )
    # acks=False: Faust commits nothing for these topics; the committer does (see offsets.py).
    source = app.topic(*copartitioned, key_type=bytes, value_type=bytes, acks=False)
    app.topics.add(source)  # subscribed without an agent: the feed takes its records
    ledger = OffsetLedger()
    committer = Committer(settings, app, ledger, metrics, copartitioned, feed.fetched)
    if watchdog is None:
        watchdog = Watchdog(lambda: app.loop.create_task(app.stop()), lambda: app.should_stop)
    # Preferences first among records of the same time: a consent change stands before what
    # it governs. Then the order of the design's topic table, then the worker's own notices.
    ordered = [settings.topic(TopicRole.PREFERENCES)] + [
        settings.topic(role) for role in COPARTITIONED_ROLES if role is not TopicRole.PREFERENCES
    ]

    def caught_up(topic: str, partition: int) -> bool:
        # Everything the broker holds of this input partition was fetched: nothing to wait for.
        tp = TP(topic, partition)
        end = app.consumer.highwater(tp)
        position = feed.fetched.get(tp)
        if position is None:
            position = ledger.commit_point(tp)  # nothing read since it was assigned
        return end is not None and position is not None and position >= end

    order: EventTimeOrder[ConsumerRecord[bytes, bytes]]
    order = EventTimeOrder(
        ordered, settings.max_idle_seconds, caught_up, behind_bound=LAGGING_WAIT_SECONDS
    )
    due_topic_name = settings.topic(TopicRole.DUE_NOTICES)
    table = customers_table(app, settings)
    ready = {"recovered": False}

    state_table = FaustTable(table)

    loop = JourneyLoop(
        feed=feed,
        order=order,
        processor=processor,
        table=state_table,
        ledger=ledger,
        committer=committer,
        assignment=lambda: app.consumer.assignment(),
        stopping=lambda: bool(app.should_stop),
        revoke_timeout=settings.session_timeout_seconds,
    )

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode's stubs want signal=
    async def on_revoked(app_: Any, revoked: set[TP], **kwargs: Any) -> None:
        await loop.revoked(revoked)

    @table.on_recover
    async def rebuild_index() -> None:
        index.rebuild(active_rows(app, table))
        try:
            # The committer's clients and the group's committed offsets, now rather than at the
            # first record taken: that first take waited half a second for them, so the first
            # burst of wakes after a restart went half a second late.
            await committer.track(app.consumer.assignment())
        except Exception as exc:  # the first records taken will try again
            log.warning("could not look up the committed offsets yet: %s", exc)
        ready["recovered"] = True
        log.info("due index rebuilt: %d customers with something pending", len(index))

    async def publish_notice(customer: str, wake_ms: int, partition: int) -> None:
        # Straight to the producer, not through Faust's topic machinery (a burst of thousands
        # falls due at once); a notice is built field by field, so not checked strictly.
        await publisher.send(
            due_topic_name,
            value=schemas.encode(DUE_NOTICE, scheduler.due_notice(customer, wake_ms), strict=False),
            key=customer.encode("utf-8"),
            partition=partition,
        )

    last_lag = {"at": 0.0}

    async def every_round() -> None:
        metrics.pending_timers.set(len(index))
        if time.monotonic() - last_lag["at"] >= 5.0:
            last_lag["at"] = time.monotonic()
            await measure_lag()

    notices = scheduler.DueNotices(
        index,
        clock,
        publish_notice,
        paused=lambda: bool(app.rebalancing or app.in_recovery),
        stopping=lambda: bool(app.should_stop),
        every_round=every_round,
    )

    app.task(watchdog.guard("the journey loop", loop.run))
    app.task(watchdog.guard("the due-notice loop", notices.run))
    app.task(watchdog.guard("the offset committer", committer.run))

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def close_committer(app_: Any, **kwargs: Any) -> None:
        await committer.close()

    async def measure_lag() -> None:
        try:
            for tp in app.consumer.assignment():
                if tp.topic not in copartitioned:
                    continue
                position = await app.consumer.position(tp)
                if position is not None:
                    lag = max(app.consumer.highwater(tp) - position, 0)
                    metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
        except Exception:  # a rebalance moved things under us; the next round measures again
            log.debug("could not measure consumer lag", exc_info=True)

    add_pages(
        app,
        settings=settings,
        metrics=metrics,
        ledger=ledger,
        index=index,
        watchdog=watchdog,
        clock=clock,
        recovered=lambda: ready["recovered"],
    )
    return app
