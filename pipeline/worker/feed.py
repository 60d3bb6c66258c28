"""The worker's input records, a fetch at a time, past Faust's per-record delivery.

Faust hands each fetched record over on its own: its fetcher waits on a pair of tasks per record
(``wait_first``), the conductor turns the record into an Event and queues it, the agent's stream
iterates it and ``take_events`` gathers it back into a batch. Measured with a sampling profile on
the throughput benchmark, that machinery and the event loop turns it causes were about a third of
the worker's CPU per event. The worker only ever wanted the batches.

So the worker's consumer (:class:`FeedConsumer`, Faust's aiokafka consumer with one method
replaced) fetches as Faust's does and, for the worker's input topics, appends each partition's
share of a fetch to a :class:`Feed` in one step; the worker's loop takes what has arrived. Records
of every other topic (the table's changelog while it recovers) go the way Faust sends them.

Kept from Faust's fetcher: only the partitions Faust counts as active are fetched (not the inputs
while the table recovers); nothing is handed over while its flow is stopped for a rebalance (the
consumer seeks back to the committed offsets instead, as Faust's does) or from a fetch of an
earlier generation; the read offsets Faust keeps are moved on. Added: back-pressure, the fetcher
waits while the feed holds ``limit`` records or more; a fetch is answered at 64 KiB or after
5 ms (``FETCH_MIN_BYTES``, ``FETCH_WAIT_MS``), not at the first byte or after 1.5 s. Dropped:
Faust's discarding of re-fetched records below its read offset (after a seek back they are handed
over again; the offset ledger and the journey engine know them as read before).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)

Chunk = tuple[TP, list[ConsumerRecord[bytes, bytes]]]


class Feed:
    """Fetched records of the worker's input topics, waiting for the worker's loop."""

    def __init__(self, topics: Iterable[str], limit: int) -> None:
        self.topics = frozenset(topics)
        self.limit = limit
        self._chunks: list[Chunk] = []
        self._size = 0
        # The next offset the consumer will fetch of each partition it handed records of.
        self.fetched: dict[tuple[str, int], int] = {}
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return self._size

    async def put(self, tp: TP, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Add one partition's records of a fetch; waits while the feed is full."""
        while self._size >= self.limit:
            self._room.clear()
            await self._room.wait()
        self._chunks.append((tp, records))
        self._size += len(records)
        self.fetched[(tp.topic, tp.partition)] = records[-1].offset + 1
        self._arrived.set()

    def take(self) -> list[Chunk]:
        """Everything that arrived, in the order it arrived."""
        chunks, self._chunks = self._chunks, []
        self._size = 0
        self._arrived.clear()
        self._room.set()
        return chunks

    async def wait(self, timeout: float | None) -> None:
        """Until something arrives, or ``timeout`` seconds (None: no limit)."""
        if self._chunks:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), timeout)

    def drop(self, tps: Iterable[tuple[str, int]]) -> None:
        """Forget what arrived for partitions taken away (their new owner reads them)."""
        gone = {(tp[0], tp[1]) for tp in tps}
        self._chunks = [(tp, rs) for tp, rs in self._chunks if (tp.topic, tp.partition) not in gone]
        for where in gone:
            self.fetched.pop(where, None)
        self._size = sum(len(rs) for _, rs in self._chunks)
        if self._size < self.limit:
            self._room.set()


# A fetch the broker answers once it holds this much for the worker, or after FETCH_WAIT_MS. Faust
# asks for any byte and lets the broker hold a fetch 1.5 s: under a steady trickle every fetch
# came back with a record or two, and at 500 events/s the consumer's requests and their answers
# were about a third of the worker's CPU. Waiting up to 5 ms for more costs an event at most that.
FETCH_MIN_BYTES = 64 * 1024
FETCH_WAIT_MS = 5


class FeedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust fixes the wait at 1.5 s and leaves the minimum at aiokafka's one byte, and offers
        # neither as a setting; the consumer hands both to its fetcher when it starts.
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        consumer._fetch_max_wait_ms = FETCH_WAIT_MS
        return consumer


class FeedConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, handing the feed's topics over a fetch at a time."""

    feed: Feed | None = None

    def _new_consumer_thread(self) -> FeedConsumerThread:
        return FeedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        if self.feed is not None:
            self.feed.fetched[(partition.topic, partition.partition)] = offset

    async def _seek(self, partition: TP, offset: int) -> None:
        # In the consumer's own thread: Faust seeks from the caller's, while that thread's fetcher
        # may be walking the same buffer of fetched records (a KeyError that ends the fetcher).
        thread = self._thread

        async def seek() -> None:
            thread.seek(partition, offset)

        await thread.call_thread(seek)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - in the worker
        feed = self.feed
        if feed is None:
            await super()._drain_messages(fetcher)
            return
        callback = self.callback
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        read_offset = self._read_offset
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(1.0)
                await self.sleep(0)
                if records is None or self.should_stop:
                    continue
                if not self.flow_active:
                    try:
                        await self.perform_seek()  # back to the committed offsets, as Faust does
                    except Exception as exc:
                        log.warning("could not seek back while the flow is stopped: %s", exc)
                    continue
                generation = self.app.consumer_generation_id
                for tp, batch in records.items():
                    if not self.flow_active or self.app.consumer_generation_id != generation:
                        break  # a rebalance began: this fetch belongs to the old assignment
                    if not batch or (
                        active is not None
                        and tp not in active
                        and tp not in self._buffered_partitions
                    ):
                        continue
                    if tp.topic in feed.topics:
                        await feed.put(tp, batch)
                        read_offset[tp] = batch[-1].offset
                        continue
                    for record in batch:
                        message = self._to_message(tp, record)
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                        read_offset[tp] = record.offset
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                log.info("the broker stopped the consumer while shutting down")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise


class FeedTransport(faust_aiokafka.Transport):
    Consumer = FeedConsumer
