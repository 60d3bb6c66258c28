"""Email over SMTP (aiosmtplib), through a small pool of open connections.

Each message is multipart text + HTML. Its Message-ID is derived from the touchpoint id, so a
message that is sent again (after a crash) carries the same Message-ID and mail systems can fold
the copies. Engagement and marketing mail carries ``List-Unsubscribe`` with its signed one-click
link (the one its body offers, made by the renderer) and ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click`` (RFC 8058), as the large mailbox providers require of bulk senders.
A CR or LF in a subject or address is refused before anything is sent.

SMTP replies map to outcomes: 4xx is retryable, 5xx permanent; a dropped or refused connection is
retryable (the connection is discarded and a new one is opened next time).

Composing. Python's ``email`` package parses every header it is given into an object and folds it
again on output, which costs milliseconds a message. So the usual message is written as bytes
directly (:class:`_Composer`), the same bytes ``EmailMessage`` plus aiosmtplib's
``send_message`` would produce: header lines the policy would leave alone are written as they are,
every other one is folded by the policy itself (and remembered, as most repeat: From, To, Subject,
the MIME headers), and the parts are encoded by the same function ``set_content`` uses. Anything
unusual (a server without 8BITMIME, an address that needs SMTPUTF8, a value with a line break)
goes the ``EmailMessage`` way. A test holds both ways to the same bytes.
"""

from __future__ import annotations

import asyncio
import binascii
import email.contentmanager
import email.policy
import email.quoprimime
import functools
import random
import re
import ssl
import sys
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr

import aiosmtplib
from aiosmtplib.email import extract_sender

from pipeline.channels.base import (
    Delivered,
    Message,
    Permanent,
    Retryable,
    SendResult,
    has_line_break,
)
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
        self._composer = _Composer(self)
        # What send_message takes from the From header for MAIL FROM; None: let it (and fail).
        probe = EmailMessage()
        try:
            probe["From"] = settings.sender
            sender = extract_sender(probe)
        except (ValueError, TypeError):
            sender = None
        self._envelope_sender = sender if sender is not None and sender.isascii() else None

    async def send(self, message: Message) -> SendResult:
        if has_line_break(message.subject, message.address):
            return Permanent("refused: a line break in the subject or address (header injection)")
        now = self._clock.now()
        raw = self._composer.compose(message, now)
        email = self._compose(message, now) if raw is None else None
        async with self._slots:
            client = self._idle.pop() if self._idle else None
            try:
                if client is None or not client.is_connected:
                    client = await self._connect()
                # The envelope recipient is the address, never what a header might parse into.
                if raw is not None and self._envelope_sender and self._direct(client, message):
                    _, reply = await client.sendmail(
                        self._envelope_sender,
                        [message.address],
                        raw,
                        mail_options=["BODY=8BITMIME"],
                    )
                else:
                    _, reply = await client.send_message(
                        email or self._compose(message, now), recipients=[message.address]
                    )
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
        return Delivered(_queued_id(reply) or self._message_id(message), self._clock.now())

    def _message_id(self, message: Message) -> str:
        return f"<{message.touchpoint_id}@{self._domain}>"

    def _direct(self, client: aiosmtplib.SMTP, message: Message) -> bool:
        """Whether ``send_message`` would write the message as :class:`_Composer` does: EHLO
        done, 8BITMIME offered, and no address that needs SMTPUTF8."""
        return (
            not client.is_ehlo_or_helo_needed
            and client.supports_extension("8bitmime")
            and message.address.isascii()
        )

    def _compose(self, message: Message, now: datetime) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self._settings.sender
        email["To"] = formataddr(("", message.address))
        email["Subject"] = message.subject or ""
        email["Date"] = format_datetime(now)
        email["Message-ID"] = self._message_id(message)
        email["X-Aftercare-Touchpoint"] = message.touchpoint_id
        email["X-Aftercare-Journey"] = f"{message.journey}.{message.step}"
        if message.priority is not Priority.TRANSACTIONAL and message.unsubscribe_url:
            email["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
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


# What aiosmtplib serialises an EmailMessage with when the server takes 8BITMIME (and no address
# needs SMTPUTF8), and the policy EmailMessage() itself uses for set_content.
_WIRE = email.policy.SMTP
_CONTENT = email.policy.default
_TEXT_TYPE = {"plain": 'text/plain; charset="utf-8"', "html": 'text/html; charset="utf-8"'}
# A value the policy writes back unchanged: printable ASCII words, one space between them, no
# encoded word. A header of that shape that fits on one line is written as it is; a single such
# word too long for the name's line goes on the next line (the policy's fold, for these values).
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")
_WORD = re.compile(r"[!-~]+")
_AS_GIVEN = frozenset(
    {"subject", "message-id", "x-aftercare-touchpoint", "x-aftercare-journey", "list-unsubscribe"}
)
# One bare address (a dot-atom local part, a domain of letter, digit and hyphen labels): To, for
# each customer, which the policy writes back as it is when it fits on the line.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_BARE_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_BOUNDARY_DIGITS = len(repr(sys.maxsize - 1))


class _CachedHeaderRegistry(HeaderRegistry):
    """The standard registry, but it makes each header class once: the stock one builds a new
    class for every header it parses (``type()`` in ``__getitem__``), a large part of its cost."""

    @functools.cache  # noqa: B019 - one registry for the process; the classes are few
    def __getitem__(self, name: str) -> type:
        return super().__getitem__(name)


_FOLDING = _WIRE.clone(header_factory=_CachedHeaderRegistry())


@functools.lru_cache(maxsize=4096)
def _folded_by_policy(name: str, value: str) -> bytes:
    """``name: value`` as the wire policy writes the header object EmailMessage makes of it."""
    folded: str = _FOLDING.header_factory(name, value).fold(policy=_FOLDING)
    return folded.encode("ascii", "surrogateescape")


def _header(name: str, value: str) -> bytes:
    room = 78 - len(name) - 2  # policy.max_line_length, less "name: "
    if name == "To" and len(value) <= room and _BARE_ADDRESS.fullmatch(value):
        return f"{name}: {value}\r\n".encode("ascii")
    if name.lower() in _AS_GIVEN and "=?" not in value:
        if len(value) <= room and _PLAIN.fullmatch(value):
            return f"{name}: {value}\r\n".encode("ascii")
        if len(value) <= 77 and _WORD.fullmatch(value):
            return f"{name}:\r\n {value}\r\n".encode("ascii")
    return _folded_by_policy(name, value)


@functools.lru_cache(maxsize=64)
def _text_part_headers(subtype: str, cte: str, mime_version: bool) -> bytes:
    lines = _header("Content-Type", _TEXT_TYPE[subtype]) + _header("Content-Transfer-Encoding", cte)
    return lines + (_header("MIME-Version", "1.0") if mime_version else b"")


def _text_part(text: str, subtype: str, mime_version: bool) -> bytes:
    """One text part (its headers, a blank line, the body) as set_content and the generator make
    it; ``mime_version``: the part got its own MIME-Version (made by add_alternative)."""
    cte, payload = _encode_text(text)
    body = _NEWLINE.sub("\r\n", payload).encode("ascii", "surrogateescape")
    return _text_part_headers(subtype, cte, mime_version) + b"\r\n" + body


def _encode_text(text: str) -> tuple[str, str]:
    """The transfer encoding and body set_content gives ``text`` (utf-8, the default policy).

    The same choice as ``email.contentmanager``'s: 7bit when every line is ASCII and short
    enough, 8bit when they are short enough, else quoted-printable unless base64 is shorter on
    the first ten lines. Its quoted-printable pass maps every character through a table
    (``str.translate``), most of the cost of composing an email with a long line; here only the
    characters that need quoting are replaced (:func:`_quoted_printable`)."""
    lines = text.encode("utf-8").splitlines()
    if max((len(line) for line in lines), default=0) <= _WIDTH:
        normal = b"\n".join(lines) + b"\n"
        if normal.isascii():
            return "7bit", normal.decode("ascii")
        if _CONTENT.cte_type == "8bit":
            return "8bit", normal.decode("ascii", "surrogateescape")
    linesep = _CONTENT.linesep.encode("ascii")
    sniff = linesep.join(lines[:10]) + linesep
    sniff_qp = _quoted_printable(sniff.decode("latin-1"), _WIDTH)
    if len(sniff_qp) > len(binascii.b2a_base64(sniff)):
        return "base64", _base64(linesep.join(lines) + linesep)
    if len(lines) <= 10:
        return "quoted-printable", sniff_qp
    body = (b"\n".join(lines) + b"\n").decode("latin-1")
    return "quoted-printable", _quoted_printable(body, _WIDTH)


_WIDTH: int = _CONTENT.max_line_length or 78


def _base64(data: bytes) -> str:
    encoded: str = email.contentmanager._encode_base64(data, _WIDTH)  # type: ignore[attr-defined]
    return encoded


# Characters quoted-printable leaves as they are in a body (and the line ends it splits on).
_QP_SAFE = [c for c in range(256) if not email.quoprimime.body_check(c)] + [ord("\r"), ord("\n")]
_QP_QUOTE = re.compile("[^" + "".join(re.escape(chr(c)) for c in _QP_SAFE) + "]")
_QP_HEX = [f"={c:02X}" for c in range(256)]


def _quoted(match: re.Match[str]) -> str:
    return _QP_HEX[ord(match.group())]


def _quoted_printable(body: str, width: int) -> str:
    """``email.quoprimime.body_encode(body, width)``: each line's characters that need it
    quoted, lines wider than ``width`` broken with soft breaks (never inside an ``=XX``), and a
    space or tab ending a line quoted."""
    if not body:
        return body
    body = _QP_QUOTE.sub(_quoted, body)
    out: list[str] = []
    for line in body.splitlines():
        start = 0
        last = len(line) - 1 - width
        while start <= last:
            stop = start + width - 1
            if line[stop - 2] == "=":
                out.append(line[start : stop - 1])
                start = stop - 2
            elif line[stop - 1] == "=":
                out.append(line[start:stop])
                start = stop - 1
            else:
                out.append(line[start:stop] + "=")
                start = stop
        if line and line[-1] in " \t":
            room = start - last
            end = _QP_HEX[ord(line[-1])]
            if room >= 3:
                tail = end
            elif room == 2:
                tail = line[-1] + "=\n"
            else:
                tail = "=\n" + end
            out.append(line[start:-1] + tail)
        else:
            out.append(line[start:])
    if body[-1] in "\r\n":
        out.append("")
    return "\n".join(out)


def _boundary(parts: list[bytes]) -> str:
    """The generator's choice of boundary: random, and not a line of any part."""
    token = random.randrange(sys.maxsize)
    boundary = ("=" * 15) + f"{token:0{_BOUNDARY_DIGITS}d}" + "=="
    text = b"\r\n".join(parts)
    if b"--" + boundary.encode() not in text:
        return boundary  # not even inside a line: the generator's line search takes it too
    candidate, counter = boundary, 0
    while re.search(b"^--" + re.escape(candidate.encode()) + b"(--)?$", text, re.MULTILINE):
        candidate = f"{boundary}.{counter}"
        counter += 1
    return candidate


def _multipart_type(boundary: str) -> bytes:
    """The multipart Content-Type header the policy writes for ``boundary``. Each boundary is
    new, so the policy's fold is not remembered per value: it is made once per shape of
    boundary, on a stand-in with each digit a 7, and the boundary put in the stand-in's place."""
    head, tail = _multipart_template(boundary.translate(_SEVENS))
    return head + boundary.encode("ascii") + tail


_SEVENS = str.maketrans("0123456789", "7777777777")


@functools.lru_cache(maxsize=16)
def _multipart_template(stand_in: str) -> tuple[bytes, bytes]:
    folded = _header("Content-Type", f'multipart/alternative; boundary="{stand_in}"')
    head, found, tail = folded.partition(stand_in.encode("ascii"))
    assert found
    assert stand_in.encode("ascii") not in tail
    return head, tail


class _Composer:
    """A message as the bytes aiosmtplib's send_message would send for EmailSender._compose."""

    def __init__(self, sender: EmailSender) -> None:
        self._sender = sender

    def compose(self, message: Message, now: datetime) -> bytes | None:
        """The message as bytes, or None when it must go the EmailMessage way."""
        sender = self._sender
        settings = sender._settings
        headers: list[tuple[str, str]] = [
            ("From", settings.sender),
            ("To", formataddr(("", message.address))),
            ("Subject", message.subject or ""),
            ("Date", format_datetime(now)),
            ("Message-ID", sender._message_id(message)),
            ("X-Aftercare-Touchpoint", message.touchpoint_id),
            ("X-Aftercare-Journey", f"{message.journey}.{message.step}"),
        ]
        if message.priority is not Priority.TRANSACTIONAL and message.unsubscribe_url:
            headers.append(("List-Unsubscribe", f"<{message.unsubscribe_url}>"))
            headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        for _, value in headers:
            if "\r" in value or "\n" in value or _has_surrogates(value):
                return None  # EmailMessage refuses these; let it say so
        head = b"".join(_header(name, value) for name, value in headers)
        if not message.html:
            # set_content on the message itself: MIME-Version after its Content-* headers.
            return head + _text_part(message.text, "plain", True)
        parts = [
            _text_part(message.text, "plain", False),
            _text_part(message.html, "html", True),
        ]
        boundary = _boundary(parts)
        delimiter = f"--{boundary}\r\n".encode()
        return b"".join(
            (
                head,
                _header("MIME-Version", "1.0"),
                _multipart_type(boundary),
                b"\r\n",
                delimiter,
                parts[0],
                b"\r\n",
                delimiter,
                parts[1],
                f"\r\n--{boundary}--\r\n".encode(),
            )
        )


def _has_surrogates(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
