"""``aftercare worker``: check what the worker depends on, then run it until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal

import faust

from pipeline.config import Settings
from pipeline.journeys.rules import load_journeys
from pipeline.names import CUSTOMERS_TABLE
from pipeline.supervision import EXIT_LOOP_DIED, Watchdog
from pipeline.topics import check_topics
from pipeline.worker.app import create_app

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    # Refuse to start on a broken layout or a bad journeys file, before any partition is taken.
    # Both raise errors that the command line prints as one line naming what to fix.
    asyncio.run(check_topics(settings))
    book = load_journeys(settings.journeys_file or None)
    clock = settings.clock()
    # A dead loop stops the worker as SIGTERM does (offsets committed, tables closed), and the
    # process then exits non-zero.
    watchdog = Watchdog(lambda: os.kill(os.getpid(), signal.SIGTERM), lambda: app.should_stop)
    app = create_app(settings, book, clock, watchdog=watchdog)
    app.tables[CUSTOMERS_TABLE].on_recover(release_free_heap_after_recovery)
    log.info(
        "starting worker %s on %s: %d journeys from %s, clock %s",
        settings.worker_id,
        settings.bootstrap_servers,
        len(book.journeys),
        book.source,
        clock.now().isoformat(),
    )
    # faust.Worker installs SIGTERM/SIGINT handlers that stop the app cleanly: offsets committed,
    # producer flushed, tables closed.
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    # Faust's terminal spinner turns the root logger to DEBUG so that it can spin on every record
    # logged; every library's debug line would then be formatted and filtered on the hot path.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        if watchdog.failed:
            log.critical("worker exits: %s", watchdog.reason)
            return EXIT_LOOP_DIED
        raise exit_ from None
    return EXIT_LOOP_DIED if watchdog.failed else 0


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the system: glibc's ``malloc_trim``, where there is one.

    A recovery allocates and frees a value of ~2 KB per changelog record; glibc keeps much of what
    was freed in the process (~60 MB of resident memory after a million records) until trimmed.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return
    trim(0)


async def release_free_heap_after_recovery() -> None:
    release_free_heap()
