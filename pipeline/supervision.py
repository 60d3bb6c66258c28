"""A process whose processing loop has died exits; it is never a live process that does nothing.

The worker and the senders each run a few long-lived loops (the worker's agent, its due-notice and
offset loops; the senders' dispatch consumer). If one of them ends with an error, carrying on
would leave partitions assigned to a process that no longer processes them: the group does not
hand them to anyone else, and touchpoints expire while the health page says "ready". So a
:class:`Watchdog` is told of every such death, logs why, and stops the process with a non-zero
status, for its supervisor (systemd, Kubernetes, ``aftercare run``) to start again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

EXIT_LOOP_DIED = 70  # EX_SOFTWARE: an internal error
HARD_EXIT_AFTER_SECONDS = 30.0  # a clean stop that hangs longer than this is cut short


class Watchdog:
    def __init__(
        self,
        stop: Callable[[], Any],
        stopping: Callable[[], bool],
        *,
        hard_exit_after: float | None = HARD_EXIT_AFTER_SECONDS,
    ) -> None:
        """``stop`` starts a clean stop; ``stopping`` says whether one is under way (then a loop
        that ends is not a failure)."""
        self._stop = stop
        self._stopping = stopping
        self._hard_exit_after = hard_exit_after
        self.reason: str | None = None

    @property
    def failed(self) -> bool:
        return self.reason is not None

    def fail(self, reason: str, exc: BaseException | None = None) -> None:
        """``reason`` stopped the process from doing its work: stop it, non-zero."""
        if self.reason is not None:
            return
        self.reason = reason
        log.critical("stopping: %s", reason, exc_info=exc)
        # A clean stop commits what is done and leaves the group at once; if it hangs (a
        # stuck loop is often why we are here), the process ends anyway.
        if self._hard_exit_after is not None:
            timer = threading.Timer(self._hard_exit_after, os._exit, (EXIT_LOOP_DIED,))
            timer.daemon = True
            timer.start()
        self._stop()

    def guard(
        self, name: str, loop: Callable[[], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """``loop`` wrapped so that an error or an early return ends the process."""

        async def guarded() -> None:
            try:
                await loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.fail(f"{name} died: {type(exc).__name__}: {exc}", exc)
                return
            if not (self.failed or self._stopping()):
                self.fail(f"{name} ended while the process was running")

        return guarded
