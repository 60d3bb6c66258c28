"""The decoded-state cache: a kept state is used only for the exact bytes it was stored as."""

from __future__ import annotations

from typing import Any

from pipeline.codec import SchemaSet
from pipeline.journeys.model import CustomerState
from pipeline.worker.statecache import StateCache
from pipeline.worker.statecodec import encode_state
from tests.unit.worker.doubles import DictTable
from tests.unit.worker.test_processor import Broker, _order, _processor


def test_a_kept_state_is_given_only_for_the_bytes_it_was_kept_as() -> None:
    cache = StateCache(10)
    state = CustomerState("c1")
    cache.put(b"c1", b"stored-1", state)
    assert cache.get(b"c1", b"stored-1") is state
    assert cache.get(b"c1", b"stored-2") is None  # written some other way since: decode afresh
    assert cache.get(b"c2", b"stored-1") is None
    assert (cache.hits, cache.misses) == (1, 2)


def test_the_least_recently_used_customer_goes_first() -> None:
    cache = StateCache(2)
    for name in (b"a", b"b"):
        cache.put(name, name, CustomerState(name.decode()))
    assert cache.get(b"a", b"a") is not None  # a is now the most recent
    cache.put(b"c", b"c", CustomerState("c"))
    assert len(cache) == 2
    assert cache.get(b"b", b"b") is None
    assert cache.get(b"a", b"a") is not None


def test_size_zero_keeps_nothing() -> None:
    cache = StateCache(0)
    cache.put(b"a", b"a", CustomerState("a"))
    assert len(cache) == 0


class CountingTable(DictTable):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self, key: bytes, source: Any) -> bytes | None:
        self.reads += 1
        return super().read(key, source)


async def test_the_processor_decides_on_the_kept_state_and_on_a_changed_one(
    schemas: SchemaSet,
) -> None:
    processor = _processor(Broker(), schemas)
    processor.cache = StateCache(100)
    table = CountingTable()
    await processor.process_batch([_order(schemas, 1, "c1")], table)
    stored = table.data[b"c1"]
    kept = processor.cache.get(b"c1", stored)
    assert kept is not None
    assert len(kept.orders) == 1

    # Another order: the kept state is used (the table is still read and compared).
    await processor.process_batch([_order(schemas, 2, "c1")], table)
    assert table.reads == 2
    assert processor.cache.hits >= 2
    after_two = table.data[b"c1"]

    # The table changed behind the worker's back (a recovery, another owner): the kept state
    # does not match the stored bytes, so the stored one is decoded and decided on.
    replaced = after_two[:8] + encode_state(CustomerState("c1"))
    table.data[b"c1"] = replaced
    await processor.process_batch([_order(schemas, 3, "c1")], table)
    decided = processor.cache.get(b"c1", table.data[b"c1"])
    assert decided is not None
    assert [o.order_id for o in decided.orders] == ["order-3"]
