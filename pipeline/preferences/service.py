"""``aftercare preferences-api``: the customer's own say, turned into a complete preferences record.

Pages and API (signed tokens, see :mod:`pipeline.preferences.tokens`):

``GET /unsubscribe?token=...``
    A small page that says what the link does, with one button. It changes nothing: link scanners
    and mail previews follow links, and RFC 8058 keeps unsubscribing to a POST.
``POST /unsubscribe?token=...``
    The one-click unsubscribe (RFC 8058): mail clients POST ``List-Unsubscribe=One-Click`` with no
    cookies and no JavaScript; the page's button posts the same. Engagement mail's token removes
    its channel for engagement and marketing, marketing mail's withdraws the marketing opt-in.
    Posting it again changes nothing more.
``GET /v1/customers/{id}/preferences``, ``PATCH`` the same
    The customer's consent per channel, marketing opt-in, unsubscribed channels, quiet hours, time
    zone and locale, as JSON; a PATCH changes the fields it names. ``Authorization: Bearer <token>``
    with the ``preferences`` scope for that very customer.

A token that is forged, altered, expired, or for another customer or scope gets 403 and changes
nothing. Every change is a read-modify-write of the customer's current record (so a field nobody
touched keeps its value) published to the compacted ``preferences`` topic, keyed by customer, with
an event time after the record it replaces: the worker then applies it to every pending
touchpoint. The current records come from that topic itself, read from the beginning at start
(``/health/ready`` is 503 until then) and followed while the service runs. Changes of one customer
are made one at a time in a process; two replicas changing the same customer at the same instant
can lose one change (the later event time wins), so run one replica, or route by customer.
"""

from __future__ import annotations

import asyncio
import html
import logging
import signal
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline import logs
from pipeline.clock import Clock
from pipeline.codec import DecodeError, SchemaSet
from pipeline.config import Settings
from pipeline.metrics import PreferencesMetrics
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.preferences.tokens import CHANNEL_SCOPES, Grant, Signer, TokenError
from pipeline.topics import check_topics, topic_partitions
from pipeline.validation import problems

log = logging.getLogger(__name__)

PREFERENCES = RECORD_OF_TOPIC[TopicRole.PREFERENCES]
CHANNELS = tuple(scope.upper() for scope in CHANNEL_SCOPES)
_MILLISECOND = timedelta(milliseconds=1)
READY_WAIT_SECONDS = 20.0  # how long a request waits for the view to be read before a 503


def default_record(customer_id: str) -> dict[str, Any]:
    """A customer nobody has published preferences for: the schema's defaults."""
    return {
        "event_id": "",
        "customer_id": customer_id,
        "occurred_at": None,
        "consent": {"email": True, "sms": False, "whatsapp": False, "push": False, "in_app": True},
        "marketing_opt_in": False,
        "unsubscribed": [],
        "quiet_hours": None,
        "timezone": None,
        "locale": None,
        "email": None,
        "phone": None,
    }


class PreferencesView:
    """Every customer's newest preferences record (by event time), from the compacted topic."""

    def __init__(self, settings: Settings, schemas: SchemaSet, clock: Clock) -> None:
        self.settings = settings
        self.schemas = schemas
        self.clock = clock
        self.records: dict[str, dict[str, Any]] = {}
        self.ready = asyncio.Event()
        self.refused = 0  # records the worker dead-letters too: not a picture to build on
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[int] = []
        self._positions: dict[TopicPartition, int] = {}  # how far each partition has been read
        self._progress = asyncio.Condition()

    def get(self, customer_id: str) -> dict[str, Any] | None:
        return self.records.get(customer_id)

    def apply(self, customer_id: str, record: dict[str, Any] | None) -> None:
        if record is None:  # a tombstone: the customer's preferences are forgotten
            self.records.pop(customer_id, None)
            return
        known = self.records.get(customer_id)
        if known is None or record["occurred_at"] >= known["occurred_at"]:
            self.records[customer_id] = record

    async def run(self) -> None:
        """Read the topic from its beginning, say when caught up, then follow it."""
        topic = self.settings.topic(TopicRole.PREFERENCES)
        consumer = AIOKafkaConsumer(
            client_id=f"{self.settings.client_id}-preferences",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self.settings.kafka_client_kwargs(),
        )
        self._consumer = consumer
        await consumer.start()
        try:
            partitions = await topic_partitions(self.settings, [topic])
            if not partitions:
                raise RuntimeError(f"topic {topic} has no partitions")
            self._partitions = sorted(tp.partition for tp in partitions)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for messages in batches.values():
                    for message in messages:
                        self._take(message.key, message.value)
                async with self._progress:
                    for tp in partitions:
                        self._positions[tp] = await consumer.position(tp)
                    self._progress.notify_all()
                if not self.ready.is_set() and await self._caught_up(consumer, end):
                    log.info("preferences read: %d customers", len(self.records))
                    self.ready.set()
        finally:
            await consumer.stop()

    @staticmethod
    async def _caught_up(consumer: AIOKafkaConsumer, end: Mapping[TopicPartition, int]) -> bool:
        for tp, offset in end.items():
            if await consumer.position(tp) < offset:
                return False
        return True

    def _take(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        customer = key.decode("utf-8", "replace")
        if value is None:
            self.apply(customer, None)
            return
        try:
            record = self.schemas.decode(value, PREFERENCES).record
        except DecodeError:
            self.refused += 1
            return
        if next(self.problems(record), None) is not None:
            self.refused += 1  # the worker dead-letters it: building on it would spread the fault
            return
        self.apply(customer, record)

    def problems(self, record: Mapping[str, Any]) -> Iterator[str]:
        """What the worker's intake would refuse in this record."""
        max_future = timedelta(seconds=self.settings.max_future_seconds)
        return problems(PREFERENCES, record, now=self.clock.now(), max_future=max_future)

    async def sync(self, customer_id: str, timeout: float = 5.0) -> None:
        """Until everything on the customer's partition when asked has been read: a change is
        made on the newest picture, not on one a record in the topic already replaced."""
        consumer = self._consumer
        if consumer is None or not self._partitions:
            return
        key = customer_id.encode("utf-8")
        partition = DefaultPartitioner()(key, self._partitions, self._partitions)
        tp = TopicPartition(self.settings.topic(TopicRole.PREFERENCES), partition)
        end = (await consumer.end_offsets([tp]))[tp]
        async with asyncio.timeout(timeout), self._progress:
            await self._progress.wait_for(lambda: self._positions.get(tp, 0) >= end)


class PreferencesService:
    """Read-modify-write of one customer's preferences, published complete."""

    def __init__(
        self,
        settings: Settings,
        view: PreferencesView,
        producer: AIOKafkaProducer,
        schemas: SchemaSet,
        clock: Clock,
    ) -> None:
        self.topic = settings.topic(TopicRole.PREFERENCES)
        self.view = view
        self.producer = producer
        self.schemas = schemas
        self.clock = clock
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def current(self, customer_id: str) -> dict[str, Any]:
        return self.view.get(customer_id) or default_record(customer_id)

    async def change(
        self, customer_id: str, edit: Callable[[dict[str, Any]], None]
    ) -> tuple[dict[str, Any], bool]:
        """Apply ``edit`` to a copy of the current record; publish it if anything changed."""
        async with self._locks[customer_id]:
            await self.view.sync(customer_id)
            current = self.current(customer_id)
            record = {**current, "consent": dict(current["consent"])}
            record["unsubscribed"] = list(current.get("unsubscribed") or [])
            edit(record)
            if _visible(record) == _visible(current):
                return current, False
            now = self.clock.now()
            known = current["occurred_at"]
            # After the record it replaces, in event time, even if that one came from a clock
            # running ahead of ours: else the worker would keep the older picture.
            record["occurred_at"] = now if known is None or now > known else known + _MILLISECOND
            record["event_id"] = f"preferences-api-{uuid.uuid4()}"
            wrong = list(self.view.problems(record))
            if wrong:
                raise ValueError("; ".join(wrong))
            value = self.schemas.encode(PREFERENCES, record)
            await self.producer.send_and_wait(
                self.topic, value=value, key=customer_id.encode("utf-8")
            )
            self.view.apply(customer_id, self.schemas.decode(value, PREFERENCES).record)
            return record, True


def _visible(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("event_id", "occurred_at")}


# -- HTTP ----------------------------------------------------------------------------------------

_EDITABLE = {"consent", "marketing_opt_in", "unsubscribed", "quiet_hours", "timezone", "locale"}


class Api:
    def __init__(self, service: PreferencesService, signer: Signer, clock: Clock) -> None:
        self.service = service
        self.signer = signer
        self.clock = clock
        metrics = PreferencesMetrics()
        self.registry = metrics.registry
        self.changes = metrics.changes
        self.refused = metrics.refused

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._until_ready])
        app.router.add_get("/unsubscribe", self.unsubscribe_page)
        app.router.add_post("/unsubscribe", self.unsubscribe)
        app.router.add_get("/v1/customers/{customer}/preferences", self.read)
        app.router.add_patch("/v1/customers/{customer}/preferences", self.edit)
        app.router.add_get("/health/live", self.live)
        app.router.add_get("/health/ready", self.ready)
        app.router.add_get("/metrics", self.metrics)
        return app

    @web.middleware
    async def _until_ready(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/health") or request.path == "/metrics":
            response: web.StreamResponse = await handler(request)
            return response
        if not self.service.view.ready.is_set():
            # Mail providers do not retry a one-click POST: wait a while rather than refuse.
            try:
                async with asyncio.timeout(READY_WAIT_SECONDS):
                    await self.service.view.ready.wait()
            except TimeoutError:
                return web.json_response(
                    {"error": "starting: reading the preferences topic; try again in a moment"},
                    status=503,
                    headers={"Retry-After": "5"},
                )
        response = await handler(request)
        return response

    # -- one-click unsubscribe ---------------------------------------------------------------

    def _grant(self, token: str | None, scopes: tuple[str, ...]) -> Grant:
        if not token:
            raise TokenError("no token")
        grant = self.signer.verify(token, self.clock.now())
        if grant.scope not in scopes:
            raise TokenError(f"a {grant.scope} token cannot do this")
        return grant

    async def unsubscribe_page(self, request: web.Request) -> web.Response:
        try:
            grant = self._grant(request.query.get("token"), (*CHANNEL_SCOPES, "marketing"))
        except TokenError as exc:
            return self._refused_page(exc)
        token = html.escape(request.query["token"], quote=True)
        body = (
            f"<h1>Unsubscribe</h1><p>{html.escape(_what(grant))}</p>"
            f'<form method="post" action="?token={token}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
            "<p>Order confirmations, delivery updates and refunds still reach you.</p>"
        )
        return _page("Unsubscribe", body)

    async def unsubscribe(self, request: web.Request) -> web.Response:
        try:
            grant = self._grant(request.query.get("token"), (*CHANNEL_SCOPES, "marketing"))
        except TokenError as exc:
            return self._refused_page(exc)
        form = await request.post()  # List-Unsubscribe=One-Click (RFC 8058); not required here
        log.info("one-click unsubscribe, scope %s (%s)", grant.scope, form.get("List-Unsubscribe"))

        def edit(record: dict[str, Any]) -> None:
            if grant.scope == "marketing":
                record["marketing_opt_in"] = False
            elif grant.scope.upper() not in record["unsubscribed"]:
                record["unsubscribed"].append(grant.scope.upper())

        _, changed = await self.service.change(grant.customer_id, edit)
        if changed:
            self.changes.labels("unsubscribe", grant.scope).inc()
        return _page("Unsubscribed", f"<h1>Done</h1><p>{html.escape(_done(grant))}</p>")

    def _refused_page(self, exc: TokenError) -> web.Response:
        self.refused.labels("403").inc()
        log.info("refused a preferences link: %s", exc)
        body = (
            "<h1>This link does not work</h1><p>It has expired or was changed. Nothing was "
            "changed; use the link in a newer message, or your account's settings.</p>"
        )
        return _page("Link not valid", body, status=403)

    # -- the JSON API ----------------------------------------------------------------------

    def _bearer(self, request: web.Request) -> Grant:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        grant = self._grant(token.strip() if scheme.lower() == "bearer" else None, ("preferences",))
        if grant.customer_id != request.match_info["customer"]:
            raise TokenError("the token is for another customer")
        return grant

    def _forbidden(self, exc: TokenError) -> web.Response:
        self.refused.labels("403").inc()
        return web.json_response({"error": f"forbidden: {exc}"}, status=403)

    async def read(self, request: web.Request) -> web.Response:
        try:
            grant = self._bearer(request)
        except TokenError as exc:
            return self._forbidden(exc)
        return web.json_response(_public(self.service.current(grant.customer_id)))

    async def edit(self, request: web.Request) -> web.Response:
        try:
            grant = self._bearer(request)
        except TokenError as exc:
            return self._forbidden(exc)
        try:
            body = await request.json()
            edit = _editor(body)
        except (ValueError, TypeError) as exc:
            self.refused.labels("400").inc()
            return web.json_response({"error": str(exc)}, status=400)
        try:
            record, changed = await self.service.change(grant.customer_id, edit)
        except ValueError as exc:  # what the worker would refuse: a time zone it does not know
            self.refused.labels("400").inc()
            return web.json_response({"error": str(exc)}, status=400)
        if changed:
            self.changes.labels("api", "preferences").inc()
        return web.json_response(_public(record))

    # -- health ------------------------------------------------------------------------------

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        ready = self.service.view.ready.is_set()
        body = {"ready": ready, "customers": len(self.service.view.records)}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


def _what(grant: Grant) -> str:
    if grant.scope == "marketing":
        return "Stop offers and recommendations, on every channel."
    return f"Stop tips, offers and reminders by {_channel_words(grant.scope)}."


def _done(grant: Grant) -> str:
    if grant.scope == "marketing":
        return "You will get no more offers or recommendations."
    return f"You will get no more tips, offers or reminders by {_channel_words(grant.scope)}."


def _channel_words(scope: str) -> str:
    return {"in_app": "in-app message", "sms": "SMS", "whatsapp": "WhatsApp"}.get(scope, scope)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    document = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;'
        f'padding:0 1rem">{body}</body></html>'
    )
    return web.Response(text=document, content_type="text/html", status=status)


def _public(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the API shows: the preferences, not the addresses."""
    quiet = record.get("quiet_hours")
    occurred = record.get("occurred_at")
    return {
        "customer_id": record["customer_id"],
        "consent": dict(record["consent"]),
        "marketing_opt_in": record["marketing_opt_in"],
        "unsubscribed": list(record.get("unsubscribed") or []),
        "quiet_hours": dict(quiet) if quiet else None,
        "timezone": record.get("timezone"),
        "locale": record.get("locale"),
        "updated_at": occurred.isoformat() if isinstance(occurred, datetime) else None,
    }


def _editor(body: Any) -> Callable[[dict[str, Any]], None]:
    """The change a PATCH body asks for, checked before anything is touched."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    unknown = sorted(set(body) - _EDITABLE)
    if unknown:
        raise ValueError(f"unknown fields {unknown}; known: {sorted(_EDITABLE)}")
    consent = body.get("consent", {})
    if not isinstance(consent, dict) or not all(
        key in CHANNEL_SCOPES and isinstance(value, bool) for key, value in consent.items()
    ):
        raise ValueError(f"consent maps channels ({', '.join(CHANNEL_SCOPES)}) to true or false")
    if "marketing_opt_in" in body and not isinstance(body["marketing_opt_in"], bool):
        raise ValueError("marketing_opt_in is true or false")
    unsubscribed = body.get("unsubscribed")
    if unsubscribed is not None and (
        not isinstance(unsubscribed, list) or not all(c in CHANNELS for c in unsubscribed)
    ):
        raise ValueError(f"unsubscribed lists channels: {', '.join(CHANNELS)}")
    quiet = body.get("quiet_hours")
    if quiet is not None and not (
        isinstance(quiet, dict)
        and set(quiet) == {"start_minute", "end_minute"}
        and all(isinstance(v, int) and 0 <= v < 1440 for v in quiet.values())
    ):
        raise ValueError("quiet_hours is null or {start_minute, end_minute} in 0-1439")
    for key in ("timezone", "locale"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise ValueError(f"{key} is text or null")

    def edit(record: dict[str, Any]) -> None:
        record["consent"].update(consent)
        for key in ("marketing_opt_in", "quiet_hours", "timezone", "locale"):
            if key in body:
                record[key] = body[key]
        if unsubscribed is not None:
            record["unsubscribed"] = sorted(set(unsubscribed))

    return edit


# -- the process ---------------------------------------------------------------------------------


def run_preferences(settings: Settings) -> int:
    logs.configure(settings.log_level, settings.log_format)
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    signer = settings.signer()  # before anything connects: a public key is refused at once
    await check_topics(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    schemas = SchemaSet.load()
    clock = settings.clock()
    producer = AIOKafkaProducer(
        client_id=f"{settings.client_id}-preferences",
        acks="all",
        enable_idempotence=True,
        **settings.kafka_client_kwargs(),
    )
    await producer.start()
    view = PreferencesView(settings, schemas, clock)
    service = PreferencesService(settings, view, producer, schemas, clock)
    api = Api(service, signer, clock)
    runner = web.AppRunner(api.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, settings.bind_address, settings.preferences_port).start()
    following = asyncio.create_task(view.run(), name="preferences-view")
    waiting = asyncio.create_task(stop.wait())
    log.info("preferences service on port %d, clock %s", settings.preferences_port, clock.now())
    try:
        done, _ = await asyncio.wait({following, waiting}, return_when=asyncio.FIRST_COMPLETED)
        failed = (
            following in done and not following.cancelled() and following.exception() is not None
        )
        if failed:
            log.error("reading the preferences topic failed: %r", following.exception())
    finally:
        for task in (following, waiting):
            task.cancel()
        await asyncio.gather(following, waiting, return_exceptions=True)
        await runner.cleanup()
        await producer.stop()
    return 70 if failed else 0
