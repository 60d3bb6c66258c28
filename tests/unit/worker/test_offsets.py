"""The worker's offset ledger: the commit point never passes a record that was not finished."""

from __future__ import annotations

import pytest

from pipeline.worker.offsets import Gap, OffsetLedger, Partition

TP = Partition("purchases", 0)


def _ledger(start: int = 10) -> OffsetLedger:
    ledger = OffsetLedger()
    ledger.assigned({TP: start}, now=0.0)
    return ledger


def test_a_partition_starts_at_its_committed_offset_with_nothing_to_commit() -> None:
    ledger = _ledger(10)
    assert ledger.commit_point(TP) == 10
    assert ledger.committable() == {}


def test_finished_records_in_a_row_move_the_commit_point_past_the_last() -> None:
    ledger = _ledger(10)
    for offset in (10, 11, 12):
        assert ledger.finished(TP, offset, now=1.0) is None
    assert ledger.committable() == {TP: 13}
    ledger.committed({TP: 13})
    assert ledger.committable() == {}


def test_a_record_read_again_moves_nothing() -> None:
    ledger = _ledger(10)
    ledger.finished(TP, 10, now=1.0)
    ledger.finished(TP, 11, now=1.0)
    assert ledger.finished(TP, 10, now=2.0) is None
    assert ledger.commit_point(TP) == 12


def test_the_commit_point_waits_at_a_gap_until_the_broker_explains_it() -> None:
    ledger = _ledger(10)
    ledger.finished(TP, 10, now=1.0)
    gap = ledger.finished(TP, 13, now=1.0)  # 11 and 12 were never handed over
    ledger.finished(TP, 14, now=1.0)

    assert gap == Gap(TP, 11, 13)
    assert ledger.committable() == {TP: 11}
    ledger.close(gap)  # the broker has nothing there: compaction, or transaction markers
    assert ledger.committable() == {TP: 15}


def test_records_lost_in_a_gap_are_read_again_from_its_start() -> None:
    ledger = _ledger(10)
    ledger.finished(TP, 10, now=1.0)
    gap = ledger.finished(TP, 12, now=1.0)
    assert gap is not None
    ledger.finished(TP, 13, now=1.0)

    assert ledger.rewind(gap) is True
    assert ledger.commit_point(TP) == 11
    for offset in (11, 12, 13):  # read again, in order, from the gap's start
        assert ledger.finished(TP, offset, now=2.0) is None
    assert ledger.commit_point(TP) == 14
    assert ledger.rewind(gap) is False  # long closed


def test_a_rewind_forgets_later_gaps_and_keeps_earlier_ones() -> None:
    ledger = _ledger(0)
    first = ledger.finished(TP, 2, now=1.0)
    second = ledger.finished(TP, 5, now=1.0)
    assert first is not None
    assert second is not None
    assert ledger.rewind(second)
    assert ledger.open_gaps() == [first]
    assert ledger.commit_point(TP) == 0


def test_an_idle_tail_that_holds_no_record_is_passed() -> None:
    ledger = _ledger(10)
    ledger.finished(TP, 10, now=1.0)
    tail = ledger.tail(TP, end=12)  # the log ends at 12; offset 11 never came (a marker?)
    assert tail == Gap(TP, 11, 12)
    ledger.close(tail)
    assert ledger.commit_point(TP) == 12
    assert ledger.tail(TP, end=12) is None


def test_no_tail_is_looked_at_behind_an_open_gap() -> None:
    ledger = _ledger(10)
    ledger.finished(TP, 12, now=1.0)
    assert ledger.tail(TP, end=20) is None


def test_records_of_a_partition_not_assigned_are_not_tracked() -> None:
    ledger = _ledger(10)
    ledger.revoked([TP])
    assert ledger.finished(TP, 10, now=1.0) is None
    assert ledger.committable() == {}
    assert TP not in ledger


@pytest.mark.parametrize(
    ("highwater", "progressed_at", "now", "stalled"),
    [
        (11, 0.0, 100.0, True),  # records waiting, nothing finished for 100 s
        (11, 90.0, 100.0, False),  # finished one 10 s ago
        (10, 0.0, 100.0, False),  # nothing waiting
        (None, 0.0, 100.0, False),  # not fetched yet: nothing known
    ],
)
def test_a_partition_with_records_waiting_and_no_progress_is_stalled(
    highwater: int | None, progressed_at: float, now: float, stalled: bool
) -> None:
    ledger = OffsetLedger()
    ledger.assigned({TP: 10}, now=progressed_at)
    assert (ledger.stalled({TP: highwater}, now, after=30.0) == [TP]) is stalled


def test_no_tail_is_looked_at_while_records_wait_in_the_workers_buffers() -> None:
    ledger = _ledger(10)
    ledger.finished(TP, 10, now=1.0)
    # 11 to 19 were fetched and wait to be decided (event-time order, a full batch): not missing.
    assert ledger.tail(TP, end=20, held=20) is None
    assert ledger.tail(TP, end=20, held=11) == Gap(TP, 11, 20)
