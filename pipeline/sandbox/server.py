"""The sandbox as one object: the outbox, the faults, the HTTP and SMTP stand-ins, one event loop.

``aftercare sandbox`` runs :func:`serve_forever`; tests start a :class:`Sandbox` on ports 0 in
their own loop and read the bound ports back from :attr:`Sandbox.http_url` and
:attr:`Sandbox.smtp_port`. Either way the senders reach it through the same settings they would
use for a real provider (base URLs, credentials, an SMTP host and port), and
:class:`SandboxConfig`'s defaults match the channel settings' defaults in :mod:`pipeline.config`,
so ``make run`` needs no configuration at all. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from aiohttp import web

from pipeline.sandbox.faults import FaultInjector
from pipeline.sandbox.http import ProviderApi, ProviderCredentials
from pipeline.sandbox.smtp import SandboxSMTPServer
from pipeline.sandbox.store import SandboxStore

log = logging.getLogger(__name__)

HOST = "127.0.0.1"  # how this machine reaches the sandbox, whatever address it listens on
DEFAULT_DB_PATH = Path("~/.cache/aftercare/sandbox/outbox.sqlite")


class SandboxError(RuntimeError):
    """The sandbox cannot start; the message says which port or file and what to do."""


@dataclass
class SandboxConfig:
    http_port: int = 8025
    smtp_port: int = 2525
    db_path: Path | str = DEFAULT_DB_PATH
    sms_account_sid: str = "ACsandbox"
    sms_auth_token: str = "sandbox-token"
    whatsapp_token: str = "sandbox-whatsapp-token"
    push_token: str = "sandbox-push-token"
    webhook_secret: str = "sandbox-webhook-secret"
    smtp_username: str = "aftercare"
    smtp_password: str = "sandbox-smtp-password"
    seed: int | None = None  # of the fault draws; None: a different sequence each run
    smtp_tls_context: ssl.SSLContext | None = None  # offer STARTTLS with this context
    # Where to listen: 127.0.0.1 this machine only, 0.0.0.0 every interface (a container).
    bind_address: str = HOST


class Sandbox:
    """Start with ``await start()`` (or ``async with``), stop with ``await stop()``."""

    def __init__(
        self,
        config: SandboxConfig,
        *,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._wall = wall
        self._rng = rng if rng is not None else random.Random(config.seed)
        self._store: SandboxStore | None = None
        self.faults = FaultInjector(self._rng, wall)
        self._runner: web.AppRunner | None = None
        self._smtp: SandboxSMTPServer | None = None
        self._http_port: int | None = None
        # Ports a port-0 sandbox got the first time, so that a restart comes back at the same
        # address (how a test plays "the provider went away and came back").
        self._reuse_http_port = 0
        self._reuse_smtp_port = 0

    @property
    def store(self) -> SandboxStore:
        """The outbox, for in-process inspection (tests); the same data as /_sandbox/messages."""
        if self._store is None:
            raise RuntimeError("the sandbox is not running; start() it first")
        return self._store

    @property
    def http_port(self) -> int:
        if self._http_port is None:
            raise RuntimeError("the sandbox is not running; start() it first")
        return self._http_port

    @property
    def http_url(self) -> str:
        """Base of every HTTP stand-in, e.g. ``http://127.0.0.1:8025`` (add ``/twilio``...)."""
        return f"http://{HOST}:{self.http_port}"

    @property
    def smtp_port(self) -> int:
        if self._smtp is None:
            raise RuntimeError("the sandbox is not running; start() it first")
        return self._smtp.port

    async def start(self) -> None:
        """Open the outbox and listen. After :meth:`stop`, a sandbox configured with port 0
        listens again on the ports it had (the same URLs), or fails if they were taken."""
        if self._store is not None:
            raise RuntimeError(f"the sandbox is already running at {self.http_url}")
        config = self.config
        http_port = config.http_port or self._reuse_http_port
        smtp_port = config.smtp_port or self._reuse_smtp_port
        self._store = SandboxStore(config.db_path, self._wall)
        try:
            api = ProviderApi(
                self._store,
                self.faults,
                ProviderCredentials(
                    sms_account_sid=config.sms_account_sid,
                    sms_auth_token=config.sms_auth_token,
                    whatsapp_token=config.whatsapp_token,
                    push_token=config.push_token,
                    webhook_secret=config.webhook_secret,
                ),
                self._wall,
            )
            self._runner = web.AppRunner(
                api.app(), handle_signals=False, access_log=None, shutdown_timeout=2.0
            )
            await self._runner.setup()
            site = web.TCPSite(self._runner, config.bind_address, http_port)
            try:
                await site.start()
            except OSError as exc:
                raise SandboxError(
                    f"the sandbox cannot listen for HTTP on {config.bind_address}:{http_port} "
                    f"({exc.strerror}); stop whatever uses that port (another sandbox?) or set "
                    "AFTERCARE_SANDBOX_HTTP_PORT"
                ) from exc
            self._http_port = self._reuse_http_port = int(self._runner.addresses[0][1])
            self._smtp = SandboxSMTPServer(
                self._store,
                self.faults,
                port=smtp_port,
                username=config.smtp_username,
                password=config.smtp_password,
                tls_context=config.smtp_tls_context,
                host=config.bind_address,
            )
            try:
                await self._smtp.start()
            except OSError as exc:
                self._smtp = None
                raise SandboxError(
                    f"the sandbox cannot listen for SMTP on {config.bind_address}:{smtp_port} "
                    f"({exc.strerror}); stop whatever uses that port (another sandbox?) or set "
                    "AFTERCARE_SANDBOX_SMTP_PORT"
                ) from exc
            self._reuse_smtp_port = self._smtp.port
        except BaseException:
            await self.stop()
            raise
        log.info(
            "sandbox: HTTP %s, SMTP %s:%d, outbox %s",
            self.http_url,
            HOST,
            self.smtp_port,
            self.store.path,
        )

    async def stop(self) -> None:
        """Close every listener and connection, then the outbox. Safe to call twice."""
        if self._smtp is not None:
            await self._smtp.stop()
            self._smtp = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._http_port = None
        if self._store is not None:
            self._store.close()
            self._store = None

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve_forever(config: SandboxConfig) -> None:
    """Run the sandbox until SIGTERM or SIGINT, then stop it cleanly."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for number in signals:
        loop.add_signal_handler(number, stopping.set)
    try:
        async with Sandbox(config) as sandbox:
            print(
                f"sandbox: HTTP {sandbox.http_url} (twilio, whatsapp, fcm, webhook, _sandbox), "
                f"SMTP {HOST}:{sandbox.smtp_port}, outbox {sandbox.store.path}",
                flush=True,
            )
            await stopping.wait()
    finally:
        for number in signals:
            loop.remove_signal_handler(number)
