"""A loop that dies stops the process; one that ends during a clean stop does not."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.supervision import Watchdog


class _Process:
    def __init__(self) -> None:
        self.stops = 0
        self.stopping = False

    def watchdog(self) -> Watchdog:
        return Watchdog(self.stop, lambda: self.stopping, hard_exit_after=None)

    def stop(self) -> None:
        self.stops += 1


async def _dies() -> None:
    raise RuntimeError("changelog topic has 0 partitions")


async def _ends() -> None:
    return None


async def test_a_loop_that_raises_stops_the_process_once_and_says_why() -> None:
    process = _Process()
    watchdog = process.watchdog()

    await watchdog.guard("the journey agent", _dies)()
    await watchdog.guard("the due-notice loop", _dies)()

    assert process.stops == 1
    assert watchdog.failed
    assert watchdog.reason == (
        "the journey agent died: RuntimeError: changelog topic has 0 partitions"
    )


async def test_a_loop_that_returns_while_the_process_runs_is_a_failure() -> None:
    process = _Process()
    watchdog = process.watchdog()
    await watchdog.guard("the offset committer", _ends)()
    assert watchdog.reason == "the offset committer ended while the process was running"
    assert process.stops == 1


async def test_a_loop_that_ends_during_a_clean_stop_is_not_a_failure() -> None:
    process = _Process()
    process.stopping = True
    watchdog = process.watchdog()
    await watchdog.guard("the offset committer", _ends)()
    assert not watchdog.failed
    assert process.stops == 0


async def test_a_cancelled_loop_is_cancelled_not_failed() -> None:
    process = _Process()
    watchdog = process.watchdog()
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(watchdog.guard("a loop", forever)())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not watchdog.failed
