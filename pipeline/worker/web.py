"""The worker's web pages: Prometheus metrics, Kubernetes' probes, and one customer's view.

- ``/metrics``: the worker's registry, in Prometheus' text format;
- ``/health/live``: the process answers;
- ``/health/ready``: ready only once recovered, while not rebalancing, while every loop runs and
  no assigned partition with records waiting has stood still for ``STALL_SECONDS``;
- ``/customers/{id}`` (with ``AFTERCARE_CUSTOMER_API_TOKEN``): one customer, as
  ``aftercare customer --json`` shows them.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from typing import Any

import faust
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline.clock import Clock
from pipeline.config import Settings
from pipeline.metrics import WorkerMetrics
from pipeline.names import COPARTITIONED_ROLES
from pipeline.supervision import Watchdog
from pipeline.worker import scheduler
from pipeline.worker.offsets import OffsetLedger

STALL_SECONDS = 30.0  # records waiting on a partition where nothing moved this long: not ready


def add_pages(
    app: faust.App,
    *,
    settings: Settings,
    metrics: WorkerMetrics,
    ledger: OffsetLedger,
    index: scheduler.DueIndex,
    watchdog: Watchdog,
    clock: Clock,
    recovered: Callable[[], bool],
) -> None:
    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; the exposition is UTF-8 (the default).
        media_type = CONTENT_TYPE_LATEST.split("; charset")[0]
        return web.bytes(generate_latest(metrics.registry), content_type=media_type)

    @app.page("/health/live")
    async def live(web: Any, request: Any) -> Any:
        return web.json({"live": True})

    @app.page("/health/ready")
    async def ready_page(web: Any, request: Any) -> Any:
        highwaters = {tp: app.consumer.highwater(TP(*tp)) for tp in ledger.partitions}
        stalled = ledger.stalled(highwaters, time.monotonic(), STALL_SECONDS)
        is_ready = (
            recovered()
            and not app.rebalancing
            and not app.in_recovery
            and not watchdog.failed
            and not stalled
        )
        first_input = settings.topic(COPARTITIONED_ROLES[0])
        body = {
            "ready": is_ready,
            "died": watchdog.reason,
            "stalled_partitions": sorted(f"{tp.topic}[{tp.partition}]" for tp in stalled),
            "assigned_partitions": sum(
                1 for tp in app.assignor.assigned_actives() if tp.topic == first_input
            ),
            "customers_due_later": len(index),
            "events": metrics.events_by_outcome(),
            "clock": clock.now().isoformat(),
        }
        return web.json(body, status=200 if is_ready else 503)

    if settings.customer_api_token:
        expected = f"Bearer {settings.customer_api_token.get_secret_value()}".encode()
        # Each answer reads three partitions from their start: one at a time, beside the journeys.
        one_at_a_time = asyncio.Semaphore(1)

        @app.page("/customers/{customer}")
        async def customer_page(web: Any, request: Any, customer: str) -> Any:
            """One customer, as `aftercare customer --json` shows them: answered from the table's
            changelog and the customer's partitions of deliveries and dispatch, so any worker
            answers for any customer, whichever owns it."""
            from pipeline.analytics.customer import as_json, look_up
            from pipeline.analytics.reading import ReadError

            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return web.json({"error": "a bearer token is needed"}, status=401)
            async with one_at_a_time:
                try:
                    view = await look_up(settings, customer)
                except ReadError as exc:
                    return web.json({"error": str(exc)}, status=503)
            found = view.state is not None or bool(view.history)
            return web.json(as_json(view), status=200 if found else 404)
