"""The worker's journey loop: fetched records, in event-time order, to the processor in batches.

The loop takes what the consumer fetched (:mod:`pipeline.worker.feed`), orders it by event time
(:mod:`pipeline.worker.ordering`) and decides what may go; a batch's offsets count as finished
(:mod:`pipeline.worker.offsets`) only after it is finished, by which time its commands are on the
broker and its states written. While the broker acknowledges one batch the next is decided (on the
first one's states), so at most two are open. Records held for event-time order are let go when
their wait ends, even if nothing else arrives.

A revocation waits for a moment with no batch open (:meth:`JourneyLoop.revoked`), so that the batch
in hand is finished by the owner that decided it: its states written, its offsets committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from typing import TypeAlias

from aiokafka.structs import ConsumerRecord
from faust.types import TP

from pipeline.codec import peek_occurred_at
from pipeline.intake import SourceRecord
from pipeline.worker.committer import Committer
from pipeline.worker.feed import Chunk, Feed
from pipeline.worker.offsets import OffsetLedger
from pipeline.worker.ordering import UNKNOWN_TIME, EventTimeOrder
from pipeline.worker.processor import Batch, JourneyProcessor, StateTable

log = logging.getLogger(__name__)

BATCH_MAX = 1000  # records decided together, whose commands are acknowledged together

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


def source_record(record: Record) -> SourceRecord:
    return SourceRecord(
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value,
        record.timestamp,
        tuple(record.headers or ()),
    )


class JourneyLoop:
    """``run`` until ``stopping()``; ``assignment()`` is what the consumer owns now."""

    def __init__(
        self,
        *,
        feed: Feed,
        order: EventTimeOrder[Record],
        processor: JourneyProcessor,
        table: StateTable,
        ledger: OffsetLedger,
        committer: Committer,
        assignment: Callable[[], Collection[TP]],
        stopping: Callable[[], bool],
        revoke_timeout: float,
    ) -> None:
        self.feed = feed
        self.order = order
        self.processor = processor
        self.table = table
        self.ledger = ledger
        self.committer = committer
        self.assignment = assignment
        self.stopping = stopping
        self.revoke_timeout = revoke_timeout
        self.idle = asyncio.Event()  # set while no batch is open (begun and not finished)
        self.idle.set()
        self._revoking = 0  # revocations waiting for ``idle``

    async def run(self) -> None:
        feed, order, processor = self.feed, self.order, self.processor
        open_batch: tuple[Batch, list[Record]] | None = None
        while not self.stopping():
            if open_batch is None:
                wait = order.next_deadline(time.monotonic())
                await feed.wait(1.0 if wait is None else wait)
            chunks = feed.take()
            if chunks:
                await self._take(chunks)
            ready = order.release(time.monotonic())
            if open_batch is not None and (not ready or self._revoking):
                # Nothing to decide meanwhile, or partitions are being revoked: the revocation
                # waits for a moment with no batch open.
                await self._finish(*open_batch)
                open_batch = None
                self.idle.set()
            for start in range(0, len(ready), BATCH_MAX):
                records = ready[start : start + BATCH_MAX]
                self.idle.clear()
                behind = open_batch[0] if open_batch is not None else None
                begun = await processor.begin(
                    [source_record(r) for r in records], self.table, behind
                )
                if open_batch is not None:
                    await self._finish(*open_batch)
                open_batch = (begun, records)
        if open_batch is not None:
            await self._finish(*open_batch)
        self.idle.set()

    async def revoked(self, revoked: set[TP]) -> None:
        """Partitions are taken away: let the batch in hand finish (Faust waits for nothing here,
        acks are off), commit what is finished of them, and forget their buffered records, which
        their new owner reads again."""
        self._revoking += 1
        try:
            await asyncio.wait_for(self.idle.wait(), timeout=self.revoke_timeout)
        except TimeoutError:
            log.warning("a batch was still being processed when partitions were revoked")
        finally:
            self._revoking -= 1
        await self.committer.revoked(revoked)
        self.feed.drop(revoked)
        self.order.drop(revoked)

    async def _finish(self, decided: Batch, records: list[Record]) -> None:
        await self.processor.finish(decided, self.table)
        now = time.monotonic()
        for record in records:
            gap = self.ledger.finished(TP(record.topic, record.partition), record.offset, now)
            if gap is not None:
                self.committer.queue(gap)

    async def _take(self, chunks: list[Chunk]) -> None:
        # Records of partitions taken away since they were fetched belong to their new owner.
        assignment = self.assignment()
        await self.committer.track(assignment)
        add = self.order.add
        for tp, records in chunks:
            if tp not in assignment:
                continue
            topic, partition = tp.topic, tp.partition
            for record in records:
                occurred = peek_occurred_at(record.value)
                when = UNKNOWN_TIME if occurred is None else occurred  # 0 is the epoch, a time
                add(topic, partition, when, record)
