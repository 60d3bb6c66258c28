"""The worker: one Faust app that wires the journey processor to Kafka. Nothing else lives here.

- one loop takes the four input topics and ``due-notices`` (co-partitioned, raw bytes) a fetch at a
  time from the consumer (:mod:`pipeline.worker.feed`), puts them in event-time order and hands
  them to :class:`~pipeline.worker.processor.JourneyProcessor` in batches;
- one table, ``customers``, holds each customer's journey state (RocksDB, changelogged);
- after every recovery the due index is rebuilt from the table's active partitions;
- one task publishes due-notices for what the index says is due;
- the worker commits its input offsets itself, never past a record it has not finished
  (:mod:`pipeline.worker.offsets`); Faust's acknowledgements are off for those topics;
- a :class:`~pipeline.supervision.Watchdog` ends the process, non-zero, if one of the worker's loops
  dies;
- two pages answer Kubernetes' probes: ``/health/live`` and ``/health/ready`` (ready only while
  every loop runs and no assigned partition with records waiting has stood still for
  ``STALL_SECONDS``).

Run it with ``aftercare worker``; scale it by starting more (see the README).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import weakref
from collections.abc import Awaitable, Iterator
from datetime import timedelta
from typing import Any, cast

import faust
from aiokafka.structs import ConsumerRecord
from faust.streams import _current_event
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline.clock import Clock
from pipeline.codec import SchemaSet, peek_occurred_at
from pipeline.config import Settings
from pipeline.intake import Intake, SourceRecord
from pipeline.journeys.engine import JourneyEngine
from pipeline.journeys.rules import JourneyBook
from pipeline.metrics import WorkerMetrics
from pipeline.names import COPARTITIONED_ROLES, CUSTOMERS_TABLE, RECORD_OF_TOPIC, TopicRole
from pipeline.supervision import Watchdog
from pipeline.worker import scheduler
from pipeline.worker.committer import Committer
from pipeline.worker.feed import Chunk, Feed, FeedConsumer, FeedTransport
from pipeline.worker.offsets import OffsetLedger
from pipeline.worker.ordering import UNKNOWN_TIME, EventTimeOrder
from pipeline.worker.processor import Batch, JourneyProcessor
from pipeline.worker.statecache import StateCache
from pipeline.worker.statecodec import unpack_wake

log = logging.getLogger(__name__)

DUE_NOTICE = RECORD_OF_TOPIC[TopicRole.DUE_NOTICES]
BATCH_MAX = 1000  # records decided together, whose commands are acknowledged together
FEED_LIMIT = 4 * BATCH_MAX  # fetched records waiting beyond this: the fetcher waits
STALL_SECONDS = 30.0  # records waiting on a partition where nothing moved this long: not ready
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


class _Message:
    __slots__ = ("partition", "topic")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition


class _Origin:
    """What Faust's table reads of its *current event*: the topic and partition of the record."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = _Message(topic, partition)


class FaustTable:
    """The processor's :class:`~pipeline.worker.processor.StateTable` over a Faust table.

    Faust finds the partition of a key it reads or writes through the stream's *current event*, a
    context variable it sets only while an agent iterates event by event (faust#497). The worker
    has no agent (:mod:`pipeline.worker.feed`), so each read and write here sets it to a stand-in
    that names the partition of the record its customer came with.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self._origins: dict[tuple[str, int], tuple[_Origin, weakref.ref[_Origin]]] = {}

    def _origin(self, source: SourceRecord) -> weakref.ref[_Origin]:
        where = (source.topic, source.partition)
        known = self._origins.get(where)
        if known is None:
            origin = _Origin(*where)
            known = self._origins[where] = (origin, weakref.ref(origin))
        return known[1]

    def read(self, key: bytes, source: SourceRecord) -> bytes | None:
        _current_event.set(cast(Any, self._origin(source)))
        value: bytes | None = self.table.get(key)
        return value

    def write(self, key: bytes, value: bytes, source: SourceRecord) -> None:
        _current_event.set(cast(Any, self._origin(source)))
        self.table[key] = value


def source_record(record: ConsumerRecord[bytes, bytes]) -> SourceRecord:
    return SourceRecord(
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value,
        record.timestamp,
        tuple(record.headers or ()),
    )


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
    app = WorkerApp(
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
    idle = asyncio.Event()  # set while no batch is open (begun and not finished)
    idle.set()
    revoking = {"waiting": 0}  # revocations waiting for ``idle``
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
    table = app.Table(
        CUSTOMERS_TABLE,
        default=None,
        partitions=settings.input_partitions,
        key_type=bytes,
        value_type=bytes,
        # One RocksDB per partition, each with Faust's defaults of 3 write buffers of 64 MiB and
        # its own 2 GiB block cache: after a cold recovery the memtables alone held up to 768 MiB
        # and the index rebuild (which reads every value) filled the caches. Bounded here: at
        # most 2 x 16 MiB of memtables and 32 MiB of cache per partition.
        options={
            "write_buffer_size": 16 * 1024 * 1024,
            "max_write_buffer_number": 2,
            "block_cache_size": 32 * 1024 * 1024,
        },
    )
    ready = {"recovered": False}

    state_table = FaustTable(table)

    async def journeys() -> None:
        # Take what the consumer fetched, order it by event time, decide what may go; a batch's
        # offsets count as finished only after it is finished, by which time its commands are on
        # the broker and its states written. While the broker acknowledges one batch the next is
        # decided (on the first one's states), so at most two are open. Records held for
        # event-time order are let go when their wait ends, even if nothing else arrives.
        open_batch: tuple[Batch, list[ConsumerRecord[bytes, bytes]]] | None = None
        while not app.should_stop:
            if open_batch is None:
                wait = order.next_deadline(time.monotonic())
                await feed.wait(1.0 if wait is None else wait)
            chunks = feed.take()
            if chunks:
                await take(chunks)
            ready = order.release(time.monotonic())
            if open_batch is not None and (not ready or revoking["waiting"]):
                # Nothing to decide meanwhile, or partitions are being revoked: the revocation
                # waits for a moment with no batch open.
                await finish(*open_batch)
                open_batch = None
                idle.set()
            for start in range(0, len(ready), BATCH_MAX):
                records = ready[start : start + BATCH_MAX]
                idle.clear()
                behind = open_batch[0] if open_batch is not None else None
                begun = await processor.begin(
                    [source_record(r) for r in records], state_table, behind
                )
                if open_batch is not None:
                    await finish(*open_batch)
                open_batch = (begun, records)
        if open_batch is not None:
            await finish(*open_batch)
        idle.set()

    async def finish(decided: Batch, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        await processor.finish(decided, state_table)
        now = time.monotonic()
        for record in records:
            gap = ledger.finished(TP(record.topic, record.partition), record.offset, now)
            if gap is not None:
                committer.queue(gap)

    async def take(chunks: list[Chunk]) -> None:
        # Records of partitions taken away since they were fetched belong to their new owner.
        assignment = app.consumer.assignment()
        await committer.track(assignment)
        add = order.add
        for tp, records in chunks:
            if tp not in assignment:
                continue
            topic, partition = tp.topic, tp.partition
            for record in records:
                occurred = peek_occurred_at(record.value)
                when = UNKNOWN_TIME if occurred is None else occurred  # 0 is the epoch, a time
                add(topic, partition, when, record)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode's stubs want signal=
    async def on_revoked(app_: Any, revoked: set[TP], **kwargs: Any) -> None:
        # Faust waits for nothing here (acks are off): let the batch in hand finish, so its
        # states are written by their owner and its offsets committed.
        revoking["waiting"] += 1
        try:
            await asyncio.wait_for(idle.wait(), timeout=settings.session_timeout_seconds)
        except TimeoutError:
            log.warning("a batch was still being processed when partitions were revoked")
        finally:
            revoking["waiting"] -= 1
        await committer.revoked(revoked)
        feed.drop(revoked)
        order.drop(revoked)

    def active_rows() -> Iterator[tuple[str, int, int]]:
        # Faust iterates RocksDB by partition only through its store's own attributes.
        actives = app.assignor.assigned_actives()
        changelog: str = cast(Any, table).changelog_topic_name
        store: Any = table.data
        for partition, db in list(store._dbs.items()):
            if TP(changelog, partition) not in actives:
                continue  # standby data: another worker fires these customers
            for key, value in db.items():
                if key != store.offset_key:
                    yield key.decode("utf-8"), unpack_wake(value), partition

    @table.on_recover
    async def rebuild_index() -> None:
        index.rebuild(active_rows())
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

    app.task(watchdog.guard("the journey loop", journeys))
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

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; the exposition is UTF-8 (the default).
        media_type = CONTENT_TYPE_LATEST.split("; charset")[0]
        return web.bytes(generate_latest(metrics.registry), content_type=media_type)

    @app.page("/health/live")
    async def live(web: Any, request: Any) -> Any:
        return web.json({"live": True})

    @app.page("/health/ready")
    async def ready_page(web: Any, request: Any) -> Any:
        highwaters = {tp: app.consumer.highwater(TP(*tp)) for tp in ledger.partitions}
        stalled = ledger.stalled(highwaters, time.monotonic(), STALL_SECONDS)
        is_ready = (
            ready["recovered"]
            and not app.rebalancing
            and not app.in_recovery
            and not watchdog.failed
            and not stalled
        )
        first_input = settings.topic(COPARTITIONED_ROLES[0])
        body = {
            "ready": is_ready,
            "died": watchdog.reason,
            "stalled_partitions": sorted(f"{tp.topic}[{tp.partition}]" for tp in stalled),
            "assigned_partitions": sum(
                1 for tp in app.assignor.assigned_actives() if tp.topic == first_input
            ),
            "customers_due_later": len(index),
            "clock": clock.now().isoformat(),
        }
        return web.json(body, status=200 if is_ready else 503)

    if settings.customer_api_token:
        expected = f"Bearer {settings.customer_api_token.get_secret_value()}".encode()
        # Each answer reads three partitions from their start: one at a time, beside the journeys.
        one_at_a_time = asyncio.Semaphore(1)

        @app.page("/customers/{customer}")
        async def customer_page(web: Any, request: Any, customer: str) -> Any:
            """One customer, as `aftercare customer --json` shows them: answered from the table's
            changelog and the customer's partitions of deliveries and dispatch, so any worker
            answers for any customer, whichever owns it."""
            from pipeline.analytics.customer import as_json, look_up
            from pipeline.analytics.reading import ReadError

            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return web.json({"error": "a bearer token is needed"}, status=401)
            async with one_at_a_time:
                try:
                    view = await look_up(settings, customer)
                except ReadError as exc:
                    return web.json({"error": str(exc)}, status=503)
            found = view.state is not None or bool(view.history)
            return web.json(as_json(view), status=200 if found else 404)

    return app
