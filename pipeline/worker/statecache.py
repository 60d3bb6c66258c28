"""Recently seen customers' states, kept decoded, so that their next event skips the decoding.

Decoding a stored state was the largest single cost of a decision in the worker (about 120 µs for
a customer with a few orders, more than the journey core's own work). Customers come in bursts
(an order, then its shipment, then the app), so the worker keeps the last ``size`` customers'
states as objects, each with the exact bytes it was stored as.

The table stays the truth: the worker still reads the stored value of every customer it decides
for, and uses the kept state only when those bytes are the ones it kept (a comparison of a few
kilobytes). A state changed any other way (recovered from the changelog after a rebalance, written
by another worker while this one did not own the partition) differs and is decoded afresh. Bounded
by count, least recently used out first; each entry costs about four times its stored size.
"""

from __future__ import annotations

from collections import OrderedDict

from pipeline.journeys.model import CustomerState


class StateCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[bytes, tuple[bytes, CustomerState]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, stored: bytes) -> CustomerState | None:
        """The kept state of ``key`` if ``stored`` is what it was kept as; else None."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != stored:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: bytes, stored: bytes, state: CustomerState) -> None:
        if self.size <= 0:
            return
        self._entries[key] = (stored, state)
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
