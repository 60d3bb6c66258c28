"""The worker's inputs of one partition number, handed over in event-time order.

Why? A customer's events arrive on five topics (purchases, shipments, app-usage, preferences and
the worker's own due-notices), and Kafka orders records within a partition, never across topics.
Read in the order the consumer happens to fetch them, a SHIPPED can be decided before its
ORDER_PLACED, or a PAYMENT_FAILED before the preferences that granted SMS consent a moment earlier;
after a restart, when each topic's backlog comes in chunks, that is the common case. So, as Kafka
Streams does for a task's co-partitioned inputs (KIP-353, KIP-695):

- records are buffered per topic partition, in offset order;
- for each partition number, the buffered record with the lowest ``occurred_at`` goes first (ties:
  a fixed topic order, preferences first, so a consent change stands before what it governs);
- while one input of the group has nothing buffered, the group waits for it, up to ``max_idle``
  seconds from when it began to wait (an input with records on the broker not yet fetched, as
  ``caught_up`` tells, at least ``behind_bound``; with ``max_idle`` 0 an input read to its end is
  not waited for at all: Kafka Streams' ``max.task.idle.ms`` as KIP-695 defines it), then goes
  on without it and keeps going until everything buffered for that partition number is decided
  (Kafka Streams' "enforced processing"); a record that arrives at an emptied group starts a new
  wait. So an event read before one that happened
  earlier, on another topic, within ``max_idle``, is decided after it; the price is up to
  ``max_idle`` of latency for an event whose partition has nothing else going on;
- a record that comes after one with a later time is still processed: the journey engine's
  guards for stale and late events stay.

Records that wait here are not finished, so their offsets are not committed
(:mod:`pipeline.worker.offsets`). This module is plain data and decisions; the worker's loop
feeds it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

# A record whose time cannot be read (not Avro, an unknown schema) goes first: it will be
# dead-lettered, and must not wait behind anything.
UNKNOWN_TIME = -(2**63)


@dataclass
class _Group(Generic[T]):
    queues: dict[str, deque[tuple[int, T]]] = field(default_factory=dict)
    waiting_since: float | None = None  # when the group started to wait for an empty input
    bound: float = 0.0  # how long it may wait, from then


class EventTimeOrder(Generic[T]):
    """Buffers records per (topic, partition) and releases them lowest event time first.

    ``topics`` are the co-partitioned inputs in tie-break order (the first wins a tie).
    """

    def __init__(
        self,
        topics: Sequence[str],
        max_idle: float,
        caught_up: Callable[[str, int], bool] | None = None,
        behind_bound: float = 0.5,
    ) -> None:
        self.topics = list(topics)
        self.rank = {topic: i for i, topic in enumerate(self.topics)}
        self.max_idle = max_idle
        # Whether the consumer has read everything the broker holds of (topic, partition). An
        # empty input that has not is waited for up to ``behind_bound`` at least (its records
        # exist and are on their way); one that has, up to ``max_idle`` (0: not at all). None:
        # every empty input is waited for up to ``max_idle``.
        self.caught_up = caught_up
        self.behind_bound = behind_bound
        self._groups: dict[int, _Group[T]] = {}

    def __len__(self) -> int:
        return sum(len(q) for g in self._groups.values() for q in g.queues.values())

    def add(self, topic: str, partition: int, occurred_ms: int, record: T) -> None:
        group = self._groups.setdefault(partition, _Group())
        group.queues.setdefault(topic, deque()).append((occurred_ms, record))

    def release(self, now: float) -> list[T]:
        """Every record that may be decided now, in the order to decide them."""
        out: list[T] = []
        for partition, group in self._groups.items():
            known: dict[str, bool] = {}  # caught up, asked once per release
            while True:
                heads = [(q[0][0], self.rank[t], t) for t, q in group.queues.items() if q]
                if not heads:
                    group.waiting_since = None  # emptied: the next record starts a new wait
                    break
                empty = [topic for topic in self.topics if not group.queues.get(topic)]
                if not empty:
                    group.waiting_since = None
                else:
                    bound = self.max_idle
                    if self.caught_up is not None and not all(
                        self._caught_up(topic, partition, known) for topic in empty
                    ):
                        bound = max(bound, self.behind_bound)
                    if bound > 0:
                        if group.waiting_since is None:
                            group.waiting_since = now
                        group.bound = bound
                        if now - group.waiting_since < bound:
                            break  # wait for the empty inputs (bounded); past it, go on
                _, _, topic = min(heads)
                out.append(group.queues[topic].popleft()[1])
        return out

    def _caught_up(self, topic: str, partition: int, known: dict[str, bool]) -> bool:
        if self.caught_up is None:
            return False
        answer = known.get(topic)
        if answer is None:
            answer = known[topic] = self.caught_up(topic, partition)
        return answer

    def next_deadline(self, now: float) -> float | None:
        """Seconds until a waiting group's bound passes (0 if one has), None if none waits."""
        ends = [
            g.waiting_since + g.bound
            for g in self._groups.values()
            if g.waiting_since is not None and any(g.queues.values())
        ]
        return max(min(ends) - now, 0.0) if ends else None

    def waiting(self) -> bool:
        """Whether some records are held back waiting for an empty input."""
        return any(
            g.waiting_since is not None and any(g.queues.values()) for g in self._groups.values()
        )

    def drop(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Forget the buffered records of revoked partitions: their new owner reads them again."""
        for topic, partition in partitions:
            group = self._groups.get(partition)
            if group is not None:
                group.queues.pop(topic, None)
                if not any(group.queues.values()):
                    self._groups.pop(partition, None)
