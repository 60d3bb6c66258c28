"""``aftercare worker``: check what the worker depends on, then run it until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging

import faust

from pipeline.config import Settings
from pipeline.journeys.rules import load_journeys
from pipeline.topics import check_topics
from pipeline.worker.app import create_app

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    # Refuse to start on a broken layout or a bad journeys file, before any partition is taken.
    # Both raise errors that the command line prints as one line naming what to fix.
    asyncio.run(check_topics(settings))
    book = load_journeys(settings.journeys_file or None)
    clock = settings.clock()
    app = create_app(settings, book, clock)
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
    worker.execute_from_commandline()
    return 0
