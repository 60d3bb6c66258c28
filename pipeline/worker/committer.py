"""The worker's offsets on the broker: where each partition starts, gaps checked, commits.

:class:`~pipeline.worker.offsets.OffsetLedger` decides; this asks the broker and tells the
consumer. It commits through the Faust consumer's own aiokafka consumer (a commit must come from
the group member that owns the partitions), reads committed offsets with the admin client, and
looks inside gaps with a consumer of its own that belongs to no group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata
from faust.types import TP

from pipeline.config import Settings
from pipeline.metrics import WorkerMetrics
from pipeline.worker.offsets import Gap, OffsetLedger, Partition

log = logging.getLogger(__name__)

COMMIT_EVERY_SECONDS = 0.5
# A partition whose consumer has read past its commit point, with nothing waiting in the worker's
# buffers and nothing finished for this long, is looked at: what lies between may be markers, or
# records the consumer fetched and dropped.
TAIL_CHECK_AFTER_SECONDS = 10.0
LOOK_TIMEOUT_MS = 2000


class Committer:
    def __init__(
        self,
        settings: Settings,
        app: Any,
        ledger: OffsetLedger,
        metrics: WorkerMetrics,
        topics: Iterable[str],
        held: Mapping[tuple[str, int], int] | None = None,
    ) -> None:
        self.settings = settings
        # The next offset past the records of each partition handed to the worker's own buffers.
        self.held = held if held is not None else {}
        self.app = app
        self.ledger = ledger
        self.metrics = metrics
        self.topics = set(topics)
        self._admin: AIOKafkaAdminClient | None = None
        self._looker: AIOKafkaConsumer | None = None
        self._gaps: list[Gap] = []

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                client_id=f"{self.settings.client_id}-worker-offsets",
                **self.settings.kafka_client_kwargs(),
            )
            await admin.start()
            self._admin = admin
        if self._looker is None:
            looker = AIOKafkaConsumer(
                client_id=f"{self.settings.client_id}-worker-gaps",
                group_id=None,
                enable_auto_commit=False,
                **self.settings.kafka_client_kwargs(),
            )
            await looker.start()
            self._looker = looker
        return self._admin, self._looker

    async def close(self) -> None:
        if self._admin is not None:
            await self._admin.close()
        if self._looker is not None:
            await self._looker.stop()

    # -- assignment -----------------------------------------------------------------------------

    async def track(self, tps: Iterable[tuple[str, int]]) -> None:
        """Start tracking partitions the ledger does not know, at the group's committed offset
        (the log's start where the group has none, as the consumer's reset policy does)."""
        new = [TopicPartition(*tp) for tp in tps if tp[0] in self.topics and tp not in self.ledger]
        if not new:
            return
        admin, looker = await self._clients()
        committed = await admin.list_consumer_group_offsets(self.settings.worker_id, partitions=new)
        starts: dict[Partition, int] = {}
        unset = []
        for tp in new:
            meta = committed.get(tp)
            if meta is not None and meta.offset >= 0:
                starts[Partition(tp.topic, tp.partition)] = meta.offset
            else:
                unset.append(tp)
        if unset:
            for tp, offset in (await looker.beginning_offsets(unset)).items():
                starts[Partition(tp.topic, tp.partition)] = offset
        self.ledger.assigned(starts, time.monotonic())
        for tp, offset in starts.items():
            self.metrics.committed.labels(tp.topic, str(tp.partition)).set(offset)

    async def revoked(self, tps: Iterable[tuple[str, int]]) -> None:
        """Commit what is done on partitions being taken away, then forget them."""
        mine = [Partition(*tp) for tp in tps if tp in self.ledger]
        await self.commit(set(mine))
        self.ledger.revoked(mine)
        for tp in mine:
            for gauge in (self.metrics.committed, self.metrics.lag):
                with contextlib.suppress(KeyError):  # never measured
                    gauge.remove(tp.topic, str(tp.partition))

    # -- commits --------------------------------------------------------------------------------

    async def commit(self, only: set[Partition] | None = None) -> None:
        offsets = {
            tp: offset
            for tp, offset in self.ledger.committable().items()
            if only is None or tp in only
        }
        if not offsets:
            return
        thread = self.app.consumer._thread  # the group member's aiokafka consumer
        consumer = thread._ensure_consumer()
        request = {TopicPartition(*tp): OffsetAndMetadata(o, "") for tp, o in offsets.items()}
        try:
            await thread.call_thread(consumer.commit, request)
        except Exception as exc:  # a rebalance or a broker away: the next round commits again
            log.warning("could not commit offsets (%s: %s); will retry", type(exc).__name__, exc)
            return
        self.ledger.committed(offsets)
        now = time.monotonic()
        for tp, offset in offsets.items():
            self.metrics.committed.labels(tp.topic, str(tp.partition)).set(offset)
            # Faust's own "has not committed" monitor reads this; the worker commits, not Faust.
            thread.tp_last_committed_at[TP(tp.topic, tp.partition)] = now

    def queue(self, gap: Gap) -> None:
        self._gaps.append(gap)

    async def run(self) -> None:
        """Commit every half second; look inside every gap and every idle tail."""
        while not self.app.should_stop:
            await asyncio.sleep(COMMIT_EVERY_SECONDS)
            if self.app.rebalancing:
                continue
            await self.commit()
            try:
                await self._look_at_gaps()
            except Exception as exc:  # the broker away for a while: look again next round
                log.warning("could not look inside offset gaps: %s: %s", type(exc).__name__, exc)

    async def _look_at_gaps(self) -> None:
        gaps, self._gaps = self._gaps, []
        now = time.monotonic()
        for tp in self.ledger.idle(now, TAIL_CHECK_AFTER_SECONDS):
            # Where the consumer's reading has got to, not the log's end: records not yet fetched
            # (a backlog behind a full feed) are not missing.
            try:
                end = await self.app.consumer.position(TP(tp.topic, tp.partition))
            except Exception:  # taken away meanwhile, or the consumer restarting
                continue  # looked at again next round, and the gaps already queued are kept
            held = self.held.get((tp.topic, tp.partition))
            tail = self.ledger.tail(tp, end, held) if end is not None else None
            if tail is not None:
                gaps.append(tail)
        for gap in gaps:
            found = await self._records_inside(gap)
            if found is None:
                self._gaps.append(gap)  # nothing came back in time: next round
            elif found:
                if self.ledger.rewind(gap):
                    log.warning(
                        "offsets %d-%d of %s[%d] were never handed to the worker; reading "
                        "them again from %d",
                        gap.start,
                        gap.end - 1,
                        gap.tp.topic,
                        gap.tp.partition,
                        gap.start,
                    )
                    self.metrics.gaps.labels(gap.tp.topic, "rewound").inc()
                    await self.app.consumer.seek(TP(gap.tp.topic, gap.tp.partition), gap.start)
            else:
                self.ledger.close(gap)
                self.metrics.gaps.labels(gap.tp.topic, "none").inc()

    async def _records_inside(self, gap: Gap) -> bool | None:
        """Whether the broker has a record at an offset inside ``gap``; None if it did not say."""
        _, looker = await self._clients()
        tp = TopicPartition(gap.tp.topic, gap.tp.partition)
        looker.assign([tp])
        looker.seek(tp, gap.start)
        batches = await looker.getmany(tp, timeout_ms=LOOK_TIMEOUT_MS, max_records=1)
        records = batches.get(tp, [])
        if not records:
            position: int = await looker.position(tp)
            return False if position >= gap.end else None
        first: int = records[0].offset
        return first < gap.end
