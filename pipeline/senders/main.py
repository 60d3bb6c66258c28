"""``aftercare senders``: build the channels and run the dispatch consumer until SIGTERM or Ctrl-C.

Serves ``/health/live`` and ``/health/ready`` (ready once dispatch partitions are assigned and
their de-duplication ledger is loaded) on AFTERCARE_SENDERS_PORT. If the dispatch consumer or the
handling of a record dies, the process stops and exits with status 70.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from aiohttp import web
from aiokafka import AIOKafkaProducer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline import logs
from pipeline.channels import build_senders, http_client
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.journeysfile import load_journeys
from pipeline.senders.delivery import Deliverer
from pipeline.senders.resilience import RetryPolicy
from pipeline.senders.service import SenderService
from pipeline.supervision import EXIT_LOOP_DIED, Watchdog
from pipeline.templates import Renderer
from pipeline.topics import check_topics

log = logging.getLogger(__name__)


def run_senders(settings: Settings) -> int:
    logs.configure(settings.log_level, settings.log_format)
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    links = settings.unsubscribe_links()  # before anything connects: a public key is refused
    renderer = Renderer(unsubscribe_links=links.for_command)
    # Refuse to start on a broken template or a journey step without one, naming file and line.
    renderer.check(load_journeys(settings.journeys_file or None))
    await check_topics(settings)
    stop = asyncio.Event()
    watchdog = Watchdog(stop.set, stop.is_set)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    clock = settings.clock()
    schemas = SchemaSet.load()
    producer = AIOKafkaProducer(
        client_id=f"{settings.client_id}-senders",
        acks="all",
        linger_ms=5,
        enable_idempotence=True,
        **settings.kafka_client_kwargs(),
    )
    await producer.start()
    client = http_client()
    senders = build_senders(settings, client, producer, schemas, clock)
    deliverer = Deliverer(
        senders,
        renderer,
        clock,
        RetryPolicy(
            max_attempts=settings.sender_max_attempts,
            max_seconds_per_channel=settings.sender_max_seconds_per_channel,
        ),
        rate_per_second=settings.sender_rate_per_second,
        burst=settings.sender_rate_per_second,
    )
    service = SenderService(
        settings,
        deliverer,
        schemas,
        clock,
        producer,
        group_id=settings.senders_id,
        dedupe_window=timedelta(hours=settings.sender_dedupe_hours),
    )
    service.on_failure = watchdog.fail
    health = await _health_server(service, watchdog, settings.bind_address, settings.senders_port)
    log.info(
        "senders %s on %s, clock %s", settings.senders_id, settings.bootstrap_servers, clock.now()
    )
    try:
        await watchdog.guard("the dispatch consumer", lambda: service.run(stop))()
    finally:
        await health.cleanup()
        for sender in senders.values():
            await sender.close()
        await client.aclose()
        await producer.stop()
    return EXIT_LOOP_DIED if watchdog.failed else 0


async def _health_server(
    service: SenderService, watchdog: Watchdog, host: str, port: int
) -> web.AppRunner:
    async def live(request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def ready(request: web.Request) -> web.Response:
        ready = service.ready and not watchdog.failed
        body = {
            "ready": ready,
            "died": watchdog.reason,
            "assigned_partitions": len(service.assigned),
            "in_flight": sum(len(t) for t in service.tasks.values()),
            **vars(service.counters),
        }
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(service.deliverer.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
