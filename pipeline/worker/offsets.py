"""Which input offsets the worker has finished, and how far it may commit: no offset is skipped.

Why does the worker commit its own offsets? Faust commits the highest run of *acknowledged*
offsets, and two things let that run start past a record that was never processed: its gap check
lets the lowest acknowledged offset be one past the committed one (``_new_offset``,
faust-streaming#606), and after a seek it drops re-fetched records whose offset is below the last
one it handed out ("DROPPED MESSAGE ROFF"). A SIGKILL and restart under load moved the group's
offset past records that nobody had seen. So the worker's input topics are consumed with Faust's
acks off (Faust commits nothing for them) and this ledger decides what is committed:

- at assignment each partition starts at the group's committed offset (or the log's start): every
  offset below it is accounted for;
- records are finished in offset order per partition (the agent's batches keep it); a finished
  record right after the highest one moves the commit point with it;
- a record further on leaves a *gap*. Kafka has real gaps (a compacted ``preferences``, the
  markers of upstream transactions), so a gap is checked against the broker: if the broker has
  no record inside it, the gap is closed; if it has one, the records were lost on the way and the
  consumer is sent back to the gap's start (:meth:`OffsetLedger.rewind`); what follows is read
  again, and the journey engine treats what it has seen as duplicates;
- the commit point never passes an open gap. The worker commits it every half second, on a
  revocation and at a clean stop.

The ledger is plain data, without I/O; :mod:`pipeline.worker.app` asks the broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple


class Partition(NamedTuple):
    """A topic partition (equal to aiokafka's and Faust's TopicPartition tuples)."""

    topic: str
    partition: int


@dataclass(frozen=True)
class Gap:
    """Offsets ``start`` up to (not including) ``end`` that were never handed to the worker."""

    tp: Partition
    start: int
    end: int


@dataclass
class _Track:
    highest: int  # the highest finished offset (start - 1 before the first)
    gaps: list[Gap] = field(default_factory=list)
    committed: int = -1  # what was last committed
    progressed_at: float = 0.0  # when a record was last finished (monotonic seconds)

    @property
    def commit_point(self) -> int:
        return self.gaps[0].start if self.gaps else self.highest + 1


class OffsetLedger:
    def __init__(self) -> None:
        self._tracks: dict[Partition, _Track] = {}

    def __contains__(self, tp: object) -> bool:
        return tp in self._tracks

    @property
    def partitions(self) -> set[Partition]:
        return set(self._tracks)

    def assigned(self, starts: Mapping[Partition, int], now: float) -> None:
        """Start tracking partitions at the offsets the consumer starts reading them from."""
        for tp, start in starts.items():
            self._tracks[Partition(*tp)] = _Track(
                highest=start - 1, committed=start, progressed_at=now
            )

    def revoked(self, tps: Iterable[tuple[str, int]]) -> None:
        for tp in tps:
            self._tracks.pop(Partition(*tp), None)

    def finished(self, tp: tuple[str, int], offset: int, now: float) -> Gap | None:
        """Record that ``offset`` was processed; a gap it leaves behind is returned to be checked.

        An offset at or below the highest finished one is a record read again: nothing moves.
        """
        track = self._tracks.get(Partition(*tp))
        if track is None or offset <= track.highest:
            return None
        track.progressed_at = now
        gap = None
        if offset > track.highest + 1:
            gap = Gap(Partition(*tp), track.highest + 1, offset)
            track.gaps.append(gap)
        track.highest = offset
        return gap

    def tail(self, tp: tuple[str, int], end: int, held: int | None = None) -> Gap | None:
        """The offsets from the commit point to ``end`` (where the consumer's reading has got
        to), if nothing is open before them: records it fetched and never handed over, or markers.
        ``held``: the next offset past the records handed over and not yet finished (waiting in
        the worker's own buffers); while some are, nothing is missing."""
        track = self._tracks.get(Partition(*tp))
        if track is None or track.gaps or end <= track.highest + 1:
            return None
        if held is not None and held > track.highest + 1:
            return None
        return Gap(Partition(*tp), track.highest + 1, end)

    def close(self, gap: Gap) -> None:
        """The broker has no record inside ``gap``: the commit point may pass it."""
        track = self._tracks.get(gap.tp)
        if track is None:
            return
        if gap in track.gaps:
            track.gaps.remove(gap)
        elif not track.gaps and gap.start == track.highest + 1:  # a tail
            track.highest = gap.end - 1

    def rewind(self, gap: Gap) -> bool:
        """Records inside ``gap`` were lost on the way: forget everything from its start, which
        the consumer reads again. False if the gap is no longer open (revoked, rewound)."""
        track = self._tracks.get(gap.tp)
        if track is None:
            return False
        is_tail = not track.gaps and gap.start == track.highest + 1
        if gap not in track.gaps and not is_tail:
            return False
        track.gaps = [g for g in track.gaps if g.start < gap.start]
        track.highest = gap.start - 1
        return True

    def open_gaps(self) -> list[Gap]:
        return [gap for track in self._tracks.values() for gap in track.gaps]

    def committable(self) -> dict[Partition, int]:
        """Commit points that moved since they were last committed."""
        return {
            tp: track.commit_point
            for tp, track in self._tracks.items()
            if track.commit_point > track.committed
        }

    def committed(self, offsets: Mapping[Partition, int]) -> None:
        for tp, offset in offsets.items():
            track = self._tracks.get(tp)
            if track is not None:
                track.committed = max(track.committed, offset)

    def commit_point(self, tp: tuple[str, int]) -> int | None:
        track = self._tracks.get(Partition(*tp))
        return None if track is None else track.commit_point

    def idle(self, now: float, after: float) -> list[Partition]:
        """Partitions where nothing was finished for ``after`` seconds."""
        return [tp for tp, t in self._tracks.items() if now - t.progressed_at >= after]

    def stalled(
        self, highwaters: Mapping[Partition, int | None], now: float, after: float
    ) -> list[Partition]:
        """Partitions with records beyond the commit point and nothing finished for ``after`` s."""
        stuck = []
        for tp, track in self._tracks.items():
            end = highwaters.get(tp)
            if end is not None and end > track.commit_point and now - track.progressed_at >= after:
                stuck.append(tp)
        return stuck
