"""The customers table: how the worker keeps it, reads it and writes it through Faust.

One table, ``customers`` (RocksDB, changelogged), holds each customer's journey state as
:mod:`pipeline.worker.statecodec` writes it. :class:`FaustTable` is the processor's
:class:`~pipeline.worker.processor.StateTable` over it; :func:`active_rows` reads it for the due
index after a recovery.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.types import TP, TableT

from pipeline.config import Settings
from pipeline.intake import SourceRecord
from pipeline.names import CUSTOMERS_TABLE
from pipeline.worker.statecodec import unpack_wake


def customers_table(app: faust.App, settings: Settings) -> TableT[bytes, bytes]:
    """The customers table of ``app``, partitioned as the inputs are."""
    return app.Table(
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


def active_rows(app: faust.App, table: Any) -> Iterator[tuple[str, int, int]]:
    """``(customer, wake millis, partition)`` of every customer on this worker's active
    partitions: standby copies are another worker's to fire."""
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
