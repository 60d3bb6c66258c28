"""``aftercare worker``: check what the worker depends on, then run it until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import signal

import faust

from pipeline.config import Settings
from pipeline.journeysfile import load_journeys
from pipeline.logs import logging_config
from pipeline.names import CUSTOMERS_TABLE
from pipeline.supervision import EXIT_LOOP_DIED, Watchdog
from pipeline.templates.render import Renderer
from pipeline.topics import check_topics
from pipeline.worker.app import create_app

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    # Refuse to start on a bad journeys file (a step whose template is missing included: the
    # senders would refuse it) before connecting, then on a broken layout before any partition
    # is taken. Each raises an error the command line prints naming what to fix.
    book = load_journeys(settings.journeys_file or None)
    Renderer().check(book)
    asyncio.run(check_topics(settings))
    clock = settings.clock()
    # A dead loop stops the worker as SIGTERM does (offsets committed, tables closed), and the
    # process then exits non-zero.
    watchdog = Watchdog(lambda: os.kill(os.getpid(), signal.SIGTERM), lambda: app.should_stop)
    app = create_app(settings, book, clock, watchdog=watchdog)
    app.tables[CUSTOMERS_TABLE].on_recover(release_free_heap_after_recovery)
    tune_garbage_collector()
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
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        logging_config=logging_config(settings.log_level, settings.log_format),
        quiet=True,
    )
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


# Collections of the youngest generation every this many allocations (Python's default: 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Collect cycles less often, and never walk what exists at start again.

    Every decision allocates thousands of short-lived objects (a decoded state is about 1,500), so
    at Python's default threshold the cycle collector ran every few records, and each older-
    generation pass walked Faust's, aiokafka's and the journeys' long-lived objects: a third of
    the time a state took to decode in a measurement. The worker makes few reference cycles;
    they are still collected, fifty thousand allocations apart. ``gc.freeze`` moves what was
    built at start (the app, its modules, the journeys) out of the collector's sight for good.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


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
