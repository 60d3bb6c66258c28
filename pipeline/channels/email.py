"""Email over SMTP (aiosmtplib), through a small pool of open connections.

Each message is multipart text + HTML. Its Message-ID is derived from the touchpoint id, so a
message that is sent again (after a crash) carries the same Message-ID and mail systems can fold
the copies. Engagement and marketing mail carries ``List-Unsubscribe`` with an https link and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058), as the large mailbox providers
require of bulk senders. A CR or LF in a subject or address is refused before anything is sent.

SMTP replies map to outcomes: 4xx is retryable, 5xx permanent; a dropped or refused connection is
retryable (the connection is discarded and a new one is opened next time).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr

import aiosmtplib

from pipeline.channels.base import Delivered, Message, Outcome, Permanent, Retryable, has_line_break
from pipeline.clock import Clock
from pipeline.journeys.model import Channel, Priority


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    tls: str  # "none", "starttls" or "implicit"
    username: str
    password: str
    sender: str  # "Shop care <care@shop.example>"
    pool_size: int = 4
    timeout: float = 30.0
    unsubscribe_url: str = (
        "https://shop.example/preferences?customer={customer_id}&touchpoint={touchpoint_id}"
    )
    cafile: str = ""


class EmailSender:
    channel = Channel.EMAIL

    def __init__(self, settings: SmtpSettings, clock: Clock) -> None:
        self.provider = f"smtp:{settings.host}:{settings.port}"
        self._settings = settings
        self._clock = clock
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(settings.pool_size)
        _, address = parseaddr(settings.sender)
        self._domain = address.rpartition("@")[2] or "aftercare.invalid"

    async def send(self, message: Message) -> Outcome:
        if has_line_break(message.subject, message.address):
            return Permanent("refused: a line break in the subject or address (header injection)")
        email = self._compose(message)
        async with self._slots:
            client = self._idle.pop() if self._idle else None
            try:
                if client is None or not client.is_connected:
                    client = await self._connect()
                # The envelope recipient is the address, never what a header might parse into.
                _, reply = await client.send_message(email, recipients=[message.address])
            except aiosmtplib.SMTPRecipientsRefused as refused:
                if client is not None:
                    self._idle.append(client)  # the connection is fine; the address is not
                codes = [r.code for r in refused.recipients]
                detail = "; ".join(f"{r.code} {r.message}" for r in refused.recipients)
                if all(400 <= code < 500 for code in codes):
                    return Retryable(f"{self.provider} deferred the recipient: {detail}")
                return Permanent(f"{self.provider} refused the recipient: {detail}")
            except aiosmtplib.SMTPResponseException as error:
                await _discard(client)
                reason = f"{self.provider} answered {error.code} {error.message}"
                if 400 <= error.code < 500:
                    return Retryable(reason)
                return Permanent(reason)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                await _discard(client)
                return Retryable(f"{self.provider} unreachable: {type(error).__name__}: {error}")
            self._idle.append(client)
        return Delivered(_queued_id(reply) or email["Message-ID"], self._clock.now())

    def _compose(self, message: Message) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self._settings.sender
        email["To"] = formataddr(("", message.address))
        email["Subject"] = message.subject or ""
        email["Date"] = format_datetime(self._clock.now())
        email["Message-ID"] = f"<{message.touchpoint_id}@{self._domain}>"
        email["X-Aftercare-Touchpoint"] = message.touchpoint_id
        email["X-Aftercare-Journey"] = f"{message.journey}.{message.step}"
        if message.priority is not Priority.TRANSACTIONAL:
            url = self._settings.unsubscribe_url.format(
                customer_id=message.customer_id, touchpoint_id=message.touchpoint_id
            )
            email["List-Unsubscribe"] = f"<{url}>"
            email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email.set_content(message.text)
        if message.html:
            email.add_alternative(message.html, subtype="html")
        return email

    async def _connect(self) -> aiosmtplib.SMTP:
        settings = self._settings
        context = ssl.create_default_context(cafile=settings.cafile or None)
        client = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            use_tls=settings.tls == "implicit",
            start_tls=settings.tls == "starttls",
            tls_context=context if settings.tls != "none" else None,
            timeout=settings.timeout,
        )
        await client.connect()
        if settings.username:
            try:
                await client.login(settings.username, settings.password)
            except BaseException:
                await _discard(client)
                raise
        return client

    async def close(self) -> None:
        while self._idle:
            await _discard(self._idle.pop())


async def _discard(client: aiosmtplib.SMTP | None) -> None:
    if client is None:
        return
    try:
        if client.is_connected:
            await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()


def _queued_id(reply: str) -> str:
    marker = "queued as "
    return reply.split(marker, 1)[1].strip() if marker in reply else ""
