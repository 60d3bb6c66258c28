"""Progress on a terminal: labelled bars and text rows, redrawn in place. No dependency.

    progress = Progress()                       # on sys.stderr
    events = progress.bar("events", total=10_000)
    progress.line("clock", "Mon 2026-03-02 08:00 UTC")
    for ...:
        events.advance()
        progress.render()                       # redraws at most every `interval` seconds
    progress.close()                            # the final state, and the cursor below it

Changing a bar or a row only records the change; :meth:`Progress.render` draws. On a terminal
every row is redrawn in place (ANSI cursor-up, erase line). Anywhere else (CI logs, pipes, files)
cursor movement would be noise, so :meth:`~Progress.render` prints one plain summary line at most
every ``plain_interval`` seconds instead, and :meth:`~Progress.close` prints the last one.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 24
PLAIN_INTERVAL = 5.0


class Bar:
    """A count, out of a total when one is known."""

    def __init__(self, label: str, total: int | None, started: float) -> None:
        self.label = label
        self.value = 0
        self.total = total
        self.started = started

    def advance(self, n: int = 1) -> None:
        self.value += n

    def set(self, value: int, total: int | None = None) -> None:
        self.value = value
        if total is not None:
            self.total = total

    def text(self, now: float) -> str:
        """``[#####.......]  1,234/5,000  24%  310/s`` (no bar without a total)."""
        elapsed = now - self.started
        rate = f"  {self.value / elapsed:,.0f}/s" if elapsed > 0 and self.value else ""
        if not self.total:
            return f"{self.value:,}{rate}"
        share = min(max(self.value / self.total, 0.0), 1.0)
        filled = int(share * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return f"[{bar}]  {self.value:,}/{self.total:,}  {share:4.0%}{rate}"

    def summary(self) -> str:
        if not self.total:
            return f"{self.value:,}"
        return f"{self.value:,}/{self.total:,} ({self.value / self.total:.0%})"


class Progress:
    """Several labelled rows (bars and free text), in the order they were first added."""

    def __init__(
        self,
        stream: TextIO = sys.stderr,
        *,
        interval: float = 0.2,
        plain_interval: float = PLAIN_INTERVAL,
        width: int | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.interval = interval
        self.plain_interval = plain_interval
        self.width = width  # None: the terminal's, at each render
        self.timer = timer
        self.tty = _isatty(stream)
        self._rows: dict[str, Bar | str] = {}
        self._drawn = 0  # rows on screen from the last redraw (terminal only)
        self._last: float | None = None
        self._closed = False

    def bar(self, label: str, total: int | None = None) -> Bar:
        """The bar called ``label``, made on first use (a later ``total`` replaces the first)."""
        row = self._rows.get(label)
        if isinstance(row, Bar):
            if total is not None:
                row.total = total
            return row
        made = Bar(label, total, self.timer())
        self._rows[label] = made
        return made

    def line(self, label: str, text: str) -> None:
        """Set the free text row ``label`` (made on first use)."""
        self._rows[label] = text

    def render(self, force: bool = False) -> None:
        """Draw, unless the last drawing is more recent than the interval (or ``force``)."""
        if self._closed or not self._rows:
            return
        now = self.timer()
        every = self.interval if self.tty else self.plain_interval
        if not force and self._last is not None and now - self._last < every:
            return
        self._last = now
        if self.tty:
            self._redraw(now)
        else:
            self.stream.write(self.summary() + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and leave the cursor on the line below it. Idempotent."""
        if self._closed:
            return
        self.render(force=True)
        self._closed = True

    def summary(self) -> str:
        """Every row on one line: ``events 1,234/5,000 (24%) | clock Mon 08:00``."""
        parts = []
        for label, row in self._rows.items():
            shown = row.summary() if isinstance(row, Bar) else row
            parts.append(f"{label} {shown}")
        return " | ".join(parts)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _redraw(self, now: float) -> None:
        width = self.width or shutil.get_terminal_size((100, 24)).columns
        label_width = max(len(label) for label in self._rows)
        out = []
        if self._drawn:
            out.append(f"\x1b[{self._drawn}A")  # back to the first row of the last drawing
        for label, row in self._rows.items():
            shown = row.text(now) if isinstance(row, Bar) else row
            text = f"{label:<{label_width}}  {shown}"
            # A row wider than the terminal would wrap, and cursor-up would miss its top.
            out.append("\r\x1b[2K" + text[: max(width - 1, 1)] + "\n")
        self._drawn = len(self._rows)
        self.stream.write("".join(out))


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no such method, or a closed stream
        return False
