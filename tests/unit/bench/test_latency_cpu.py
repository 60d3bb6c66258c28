"""The latency part's CPU accounting: what one event costs each process on the path, and the
machine in all."""

import math
import os

from bench.latency import cpu_figures, cpu_used


def test_each_process_is_charged_its_own_cpu_per_event() -> None:
    before = {"worker": 10.0, "senders": 4.0}
    after = {"worker": 10.5, "senders": 5.0}
    figures = cpu_figures(500, before, after, events=1000)
    assert figures == {
        "e2e_cpu_ms_per_event_worker_at_500": 0.5,
        "e2e_cpu_ms_per_event_senders_at_500": 1.0,
        "e2e_cpu_ms_per_event_at_500": 1.5,
    }


def test_a_process_that_could_not_be_read_is_left_out_not_counted_as_nothing() -> None:
    figures = cpu_figures(50, {"worker": 1.0, "broker": math.nan}, {"worker": 1.2}, events=100)
    assert "e2e_cpu_ms_per_event_broker_at_50" not in figures
    assert figures["e2e_cpu_ms_per_event_at_50"] == 2.0


def test_cpu_used_reads_a_live_process_and_marks_a_gone_one() -> None:
    used = cpu_used({"self": os.getpid(), "gone": 2**22 + 12345})
    assert used["self"] > 0
    assert math.isnan(used["gone"])
