"""Progress: redrawn in place on a terminal, a plain line now and then anywhere else."""

from __future__ import annotations

import io

from pipeline.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Timer:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _terminal() -> tuple[Terminal, Timer, Progress]:
    stream, timer = Terminal(), Timer()
    return stream, timer, Progress(stream, interval=0.2, width=80, timer=timer)


def _taken(stream: io.StringIO) -> str:
    text = stream.getvalue()
    stream.seek(0)
    stream.truncate()
    return text


def test_a_terminal_gets_every_row_then_redraws_them_in_place() -> None:
    stream, timer, progress = _terminal()
    events = progress.bar("events", total=200)
    progress.line("clock", "Mon 2026-03-02 08:00 UTC")
    timer.now += 2
    events.advance(50)
    progress.render()
    first = _taken(stream)
    assert first == (
        "\r\x1b[2Kevents  [######..................]  50/200   25%  25/s\n"
        "\r\x1b[2Kclock   Mon 2026-03-02 08:00 UTC\n"
    )

    events.set(100)
    progress.line("clock", "Mon 2026-03-02 09:00 UTC")
    timer.now += 0.5
    progress.render()
    again = _taken(stream)
    assert again.startswith("\x1b[2A")  # up to the first row of the last drawing
    assert again.count("\x1b[2K") == 2
    assert "100/200   50%" in again
    assert "09:00" in again


def test_a_terminal_is_redrawn_at_most_every_interval_unless_forced() -> None:
    stream, timer, progress = _terminal()
    bar = progress.bar("events", total=10)
    progress.render()
    _taken(stream)
    bar.advance()
    timer.now += 0.1
    progress.render()
    assert _taken(stream) == ""
    progress.render(force=True)
    assert "1/10" in _taken(stream)
    timer.now += 0.2
    bar.advance()
    progress.render()
    assert "2/10" in _taken(stream)


def test_rows_added_later_are_drawn_below_and_counted_next_time() -> None:
    stream, _, progress = _terminal()
    progress.bar("events")
    progress.render(force=True)
    _taken(stream)
    progress.line("clock", "later")
    progress.render(force=True)
    second = _taken(stream)
    assert second.startswith("\x1b[1A")
    assert second.count("\n") == 2
    progress.render(force=True)
    assert _taken(stream).startswith("\x1b[2A")


def test_a_bar_without_a_total_is_a_count_and_long_rows_are_cut_to_the_width() -> None:
    stream, _, progress = _terminal()
    progress.bar("dispatched").advance(7)
    progress.line("note", "x" * 200)
    progress.render()
    rows = _taken(stream).split("\n")
    assert rows[0] == "\r\x1b[2Kdispatched  7"
    assert rows[1] == "\r\x1b[2K" + ("note        " + "x" * 200)[:79]


def test_the_same_label_is_the_same_bar() -> None:
    _, _, progress = _terminal()
    bar = progress.bar("events", total=5)
    bar.advance(2)
    same = progress.bar("events", total=9)
    assert same is bar
    assert (same.value, same.total) == (2, 9)
    same.set(4)
    assert (bar.value, bar.total) == (4, 9)


def test_close_draws_the_final_state_once_and_then_nothing() -> None:
    stream, _, progress = _terminal()
    bar = progress.bar("events", total=4)
    progress.render()
    bar.set(4)
    progress.close()
    assert "4/4  100%" in _taken(stream)
    progress.close()
    progress.render(force=True)
    assert _taken(stream) == ""


def test_a_pipe_gets_a_plain_summary_line_every_few_seconds_and_at_the_end() -> None:
    stream, timer = io.StringIO(), Timer()
    with Progress(stream, interval=0.2, plain_interval=5.0, timer=timer) as progress:
        events = progress.bar("events", total=200)
        progress.bar("dispatched")
        progress.line("clock", "Mon 08:00")
        events.advance(50)
        progress.render()
        assert _taken(stream) == "events 50/200 (25%) | dispatched 0 | clock Mon 08:00\n"
        events.advance(50)
        timer.now += 1
        progress.render()
        assert _taken(stream) == ""  # a terminal would have been redrawn; a log waits
        timer.now += 5
        progress.render()
        assert _taken(stream) == "events 100/200 (50%) | dispatched 0 | clock Mon 08:00\n"
        events.set(200)
    assert _taken(stream) == "events 200/200 (100%) | dispatched 0 | clock Mon 08:00\n"


def test_nothing_is_written_before_there_is_something_to_show() -> None:
    stream = Terminal()
    progress = Progress(stream)
    progress.render(force=True)
    progress.close()
    assert stream.getvalue() == ""
