"""A real SMTP server that keeps every message instead of delivering it.

The email sender speaks plain SMTP to whatever host and port it is configured with, so the only
honest stand-in is an SMTP server: aiosmtpd's protocol, served with ``loop.create_server`` in the
caller's event loop beside the HTTP stand-ins. aiosmtpd's ``Controller`` is not used because it runs
the server in a thread with a loop of its own; here one loop owns the outbox and the faults.

AUTH is optional, as it is on a relay in a private network: a client that does not authenticate
is served, one that does must give the configured username and password (anything else gets 535).
AUTH is offered without TLS (``auth_require_tls=False``) because the sandbox listens on 127.0.0.1
only; STARTTLS is offered only when a TLS context is given.

Faults map to the replies real mail servers give: an outage refuses at ``MAIL FROM`` (and at
``DATA`` if it began in between) with ``421 4.3.2``, throttling is ``421 4.7.0``, an error is
``451 4.3.0``, a rejection ``550 5.7.1``. After a 421 the server closes the connection, as RFC 5321
says it must. An accepted message is answered ``250 OK queued as <provider id>``.

Reading a message. Python's ``email`` package with its modern policy turns every header it is asked
for into a parsed object, again on each request, which costs milliseconds a message; even its
``compat32`` parser compiles a pattern for every new MIME boundary. So a message of the shapes the
senders write (one text part, or a multipart/alternative of text parts, as the generator lays them
out) is split by hand the way the ``compat32`` parser splits it, and each stored header is the
text the modern policy would give for it: as it is when the policy would not change it, else
through the policy (remembered, as most repeat). Messages of any other shape (attachments, nested
or related parts, a preamble, other charsets or encodings, bare line feeds) are read the modern
way. A test holds both ways to the same result.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email
import email.policy
import functools
import hmac
import logging
import quopri
import re
import ssl
from dataclasses import dataclass
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from pipeline.sandbox.faults import FaultInjector, Outcome
from pipeline.sandbox.store import SandboxStore

log = logging.getLogger(__name__)

HOSTNAME = "sandbox.aftercare.invalid"  # given, so that aiosmtpd does not ask DNS for the FQDN

OUTAGE_REPLY = "421 4.3.2 Service not available, closing transmission channel (sandbox outage)"
ERROR_REPLY = "451 4.3.0 Temporary local problem, try again later (sandbox error_rate)"
REJECT_REPLY = "550 5.7.1 Message rejected (sandbox reject_rate)"


class _WithoutLoginDataWarning(logging.Filter):
    """aiosmtpd sets its own deprecated ``Session.login_data`` on every successful AUTH and logs a
    warning about it (aio-libs/aiosmtpd#347); the sandbox never uses it, so drop that one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Session.login_data is deprecated")


_LOGIN_DATA_FILTER = _WithoutLoginDataWarning()


def throttle_reply(retry_after_s: int) -> str:
    return f"421 4.7.0 Too many messages, slow down; try again in {retry_after_s} s (sandbox)"


class SandboxMailHandler:
    """aiosmtpd's handler hooks: faults at MAIL FROM and DATA, accepted messages to the store."""

    def __init__(self, store: SandboxStore, faults: FaultInjector) -> None:
        self._store = store
        self._faults = faults

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self._faults.in_outage("email"):
            self._store.count("email", "outage")
            return OUTAGE_REPLY
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        verdict = self._faults.decide("email")
        if verdict.latency_s:
            await asyncio.sleep(verdict.latency_s)
        if verdict.outcome is Outcome.OUTAGE:
            self._store.count("email", "outage")
            return OUTAGE_REPLY
        if verdict.outcome is Outcome.THROTTLED:
            self._store.count("email", "throttled")
            return throttle_reply(verdict.retry_after_s)
        if verdict.outcome is Outcome.FAILED:
            self._store.count("email", "failed")
            return ERROR_REPLY
        if verdict.outcome is Outcome.REJECTED:
            self._store.count("email", "rejected")
            return REJECT_REPLY
        raw = envelope.original_content or b""
        read = read_message(raw)
        # The Message-ID is an email's identity: a copy sent again (a retry after a crash) is the
        # same message, as mailbox providers treat it, so it is counted, not stored twice.
        message_id = read.message_id
        if message_id and (earlier := self._store.find_by_idempotency("email", message_id)):
            self._store.count("email", "duplicate")
            return f"250 OK queued as {earlier}"
        provider_id = self._store.add_message(
            "email",
            recipient=", ".join(envelope.rcpt_tos),
            sender=envelope.mail_from,
            subject=read.subject,
            body=read.body or "",
            html=read.html,
            headers=read.headers,
            touchpoint_id=read.touchpoint_id,
            idempotency_key=message_id,
        )
        self._store.count("email", "accepted")
        self._faults.accepted("email")
        log.info("email %s to %s accepted", provider_id, ", ".join(envelope.rcpt_tos))
        return f"250 OK queued as {provider_id}"


@dataclass(frozen=True)
class ReadMessage:
    """What the outbox keeps of an email: its headers (the first of each name) and text parts."""

    headers: dict[str, str]
    message_id: str | None
    subject: str | None
    touchpoint_id: str | None
    body: str | None  # the text/plain part, as the sender wrote it
    html: str | None


def read_message(raw: bytes) -> ReadMessage:
    """``raw`` as :func:`read_message_modern` reads it, quickly for the usual shapes."""
    return _read_simple(raw) or read_message_modern(raw)


def read_message_modern(raw: bytes) -> ReadMessage:
    """``raw`` read with the ``email`` package's modern policy: the reference."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    headers: dict[str, str] = {}
    for name, value in message.items():
        headers.setdefault(name, str(value))
    return ReadMessage(
        headers=headers,
        message_id=_header(message, "Message-ID"),
        subject=_header(message, "Subject"),
        touchpoint_id=_header(message, "X-Aftercare-Touchpoint"),
        body=_part(message, "plain"),
        html=_part(message, "html"),
    )


class _CachedHeaderRegistry(HeaderRegistry):
    """The standard registry, but it makes each header class once: the stock one builds a new
    class for every header it parses (``type()`` in ``__getitem__``), a large part of its cost."""

    @functools.cache  # noqa: B019 - one registry for the process; the classes are few
    def __getitem__(self, name: str) -> type:
        return super().__getitem__(name)


_MODERN = email.policy.default.clone(header_factory=_CachedHeaderRegistry())
_STRUCTURED = frozenset(HeaderRegistry().registry) - {"subject"}
# Printable ASCII words, one space between them: unstructured text the policy gives back as is.
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")
_MESSAGE_ID = re.compile(r"<[A-Za-z0-9_.+-]+@[A-Za-z0-9.-]+>")
# One bare address (a dot-atom local part, a domain of letter, digit and hyphen labels): what the
# senders write in To for each customer, given back as it is by the policy.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_BARE_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_ADDRESS_HEADERS = frozenset({"to", "cc", "from", "reply-to", "sender"})
_MULTIPART = re.compile(r'multipart/(alternative|mixed); boundary="(=+[0-9]+=*(?:\.[0-9]+)?)"')
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # what the parser takes for a header's name
_TEXT_TYPE = re.compile(r'text/(plain|html); charset="(utf-8|us-ascii)"')
_ENCODINGS = frozenset({"7bit", "8bit", "quoted-printable", "base64"})
_LINE_BREAKS = re.compile(r"\r|\n")


def _header_text(name: str, raw: str) -> str:
    """What ``str(message[name])`` gives under the modern policy for this raw header value."""
    value = _LINE_BREAKS.sub("", raw)  # the modern policy's header_fetch_parse unfolds so
    lower = name.lower()
    if "=?" not in value and (
        (lower not in _STRUCTURED and _PLAIN.fullmatch(value))
        or (lower == "message-id" and _MESSAGE_ID.fullmatch(value))
        or (lower in _ADDRESS_HEADERS and _BARE_ADDRESS.fullmatch(value))
        or (lower == "content-type" and _MULTIPART.fullmatch(value))
    ):
        return value
    return _parsed_header_text(name, value)


@functools.lru_cache(maxsize=4096)
def _parsed_header_text(name: str, value: str) -> str:
    return str(_MODERN.header_factory(name, value))


@dataclass(frozen=True)
class _Part:
    """A message or a part of one, split the way the ``compat32`` parser splits it: header
    values as it keeps them (folded lines joined, the line breaks left in), the body's bytes."""

    headers: list[tuple[str, str]]
    body: bytes

    def get(self, wanted: str) -> str | None:
        for name, value in self.headers:
            if name.lower() == wanted:
                return value
        return None

    def names(self) -> list[str]:
        return [name.lower() for name, _ in self.headers]


def _split(raw: bytes) -> _Part | None:
    """Headers and body of ``raw``; None where the parser might read it otherwise (bare line
    ends, a header line it would take for body or a defect, 8-bit header bytes)."""
    head, found, body = raw.partition(b"\r\n\r\n")
    if not found or not head.isascii() or b"\n" in head.replace(b"\r\n", b""):
        return None
    headers: list[tuple[str, str]] = []
    for line in head.decode("ascii").split("\r\n"):
        if line[:1] in (" ", "\t"):
            if not headers:
                return None
            name, value = headers[-1]
            headers[-1] = (name, f"{value}\r\n{line}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not _HEADER_NAME.fullmatch(name):
            return None
        headers.append((name, value.lstrip(" \t")))
    return _Part(headers, body)


def _parts(message: _Part) -> list[_Part] | None:
    """The parts of a multipart body of the generator's shape: no preamble, no epilogue, the
    closing delimiter last; None for any other."""
    kind = message.get("content-type")
    shape = _MULTIPART.fullmatch(_LINE_BREAKS.sub("", kind or ""))
    if shape is None:
        return None
    boundary = shape.group(2).encode("ascii")
    opening, between = b"--" + boundary + b"\r\n", b"\r\n--" + boundary + b"\r\n"
    closing = b"\r\n--" + boundary + b"--\r\n"
    body = message.body
    if not body.startswith(opening) or not body.endswith(closing):
        return None
    chunks = body[len(opening) : -len(closing)].split(between)
    parts = []
    for chunk in chunks:
        if b"--" + boundary in chunk:
            return None  # a delimiter of another spelling: leave it to the parser
        part = _split(chunk)
        if part is None:
            return None
        parts.append(part)
    return parts


def _decoded(part: _Part) -> bytes | None:
    """``part.get_payload(decode=True)`` for the encodings this reading covers."""
    encoding = (part.get("content-transfer-encoding") or "").lower()
    if encoding == "quoted-printable":
        return quopri.decodestring(part.body)
    if encoding == "base64":
        try:  # what the parser decodes without a defect; anything else goes the modern way
            return base64.b64decode(b"".join(part.body.splitlines()), validate=True)
        except binascii.Error:
            return None
    return part.body


def _read_simple(raw: bytes) -> ReadMessage | None:
    """The reading of a message that is one text part, or a multipart/alternative (or mixed) of
    text parts in UTF-8 or ASCII; None for any other shape (read the modern way)."""
    message = _split(raw)
    if message is None:
        return None
    names = message.names()
    if "content-disposition" in names or names.count("content-type") > 1:
        return None
    if (message.get("content-type") or "").lower().startswith("multipart/"):
        parts = _parts(message)
        if not parts:
            return None
    else:
        parts = [message]
    texts: dict[str, str] = {}
    for part in parts:
        subtype = _text_subtype(part)
        if subtype is None:
            return None
        if subtype not in texts:  # get_body takes the first part of a kind
            payload = _decoded(part)
            if payload is None:
                return None
            charset = _TEXT_TYPE.fullmatch(_LINE_BREAKS.sub("", part.get("content-type") or ""))
            assert charset is not None  # _text_subtype matched it
            texts[subtype] = payload.decode(charset.group(2), errors="replace").replace(
                "\r\n", "\n"
            )
    headers: dict[str, str] = {}
    for name, value in message.headers:
        if name not in headers:
            headers[name] = _header_text(name, value)

    return ReadMessage(
        headers=headers,
        message_id=_first(message, headers, "message-id"),
        subject=_first(message, headers, "subject"),
        touchpoint_id=_first(message, headers, "x-aftercare-touchpoint"),
        body=texts.get("plain"),
        html=texts.get("html"),
    )


def _first(message: _Part, headers: dict[str, str], wanted: str) -> str | None:
    """``message.get(wanted)`` as text: the first header of that name, whatever its case (the
    first of its exact spelling too, so ``headers`` has it)."""
    for name, _ in message.headers:
        if name.lower() == wanted:
            return headers[name]
    return None


def _text_subtype(part: _Part) -> str | None:
    """ "plain" or "html" for a leaf text part this reading covers; None for anything else."""
    names = part.names()
    if "content-disposition" in names or names.count("content-type") != 1:
        return None
    if names.count("content-transfer-encoding") > 1:
        return None
    kind = _TEXT_TYPE.fullmatch(_LINE_BREAKS.sub("", part.get("content-type") or ""))
    encoding = part.get("content-transfer-encoding")
    if kind is None or (encoding is not None and encoding not in _ENCODINGS):
        return None
    return kind.group(1)


def _header(message: EmailMessage, name: str) -> str | None:
    value = message.get(name)
    return None if value is None else str(value)


def _part(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    # The wire has CRLF line ends; give back the text as the sender wrote it.
    return str(part.get_content()).replace("\r\n", "\n")


class _SandboxSMTP(SMTP):
    """aiosmtpd's protocol, plus: a 421 reply closes the connection (RFC 5321 section 3.8)."""

    def __init__(self, *args: Any, sessions: _Sessions, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sessions = sessions

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._sessions.opened(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.closed(self)
        super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        await super().push(status)
        code = status[:3] if isinstance(status, str) else status[:3].decode("ascii", "replace")
        if code == "421" and self.transport is not None:
            self.transport.close()


class _Sessions:
    """The open SMTP sessions, so that stopping can close them and wait until they are gone."""

    def __init__(self) -> None:
        self.open: set[_SandboxSMTP] = set()
        self.none_open = asyncio.Event()
        self.none_open.set()

    def opened(self, session: _SandboxSMTP) -> None:
        self.open.add(session)
        self.none_open.clear()

    def closed(self, session: _SandboxSMTP) -> None:
        self.open.discard(session)
        if not self.open:
            self.none_open.set()


class SandboxSMTPServer:
    """The SMTP stand-in on ``host``:``port`` (0: any free port; see :attr:`port`)."""

    def __init__(
        self,
        store: SandboxStore,
        faults: FaultInjector,
        *,
        port: int,
        username: str,
        password: str,
        tls_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self._handler = SandboxMailHandler(store, faults)
        self._host = host
        self._requested_port = port
        self._username = username.encode()
        self._password = password.encode()
        self._tls_context = tls_context
        self._server: asyncio.Server | None = None
        self._sessions = _Sessions()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox SMTP server is not running; start() it first")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        logging.getLogger("mail.log").addFilter(_LOGIN_DATA_FILTER)  # no-op when already there
        self._server = await loop.create_server(
            lambda: _SandboxSMTP(
                self._handler,
                sessions=self._sessions,
                hostname=HOSTNAME,
                ident="Aftercare sandbox ESMTP",
                enable_SMTPUTF8=True,
                tls_context=self._tls_context,
                auth_require_tls=False,
                authenticator=self._authenticate,
                loop=loop,
            ),
            host=self._host,
            port=self._requested_port,
        )

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, close every open session and wait until they are gone."""
        if self._server is None:
            return
        self._server.close()
        for session in list(self._sessions.open):
            if session.transport is not None:
                session.transport.close()
        async with asyncio.timeout(timeout):
            await self._server.wait_closed()
            await self._sessions.none_open.wait()  # connection_lost runs a loop iteration later
        self._server = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        good = (
            isinstance(auth_data, LoginPassword)
            and hmac.compare_digest(auth_data.login, self._username)
            and hmac.compare_digest(auth_data.password, self._password)
        )
        # handled=False without a message: aiosmtpd answers 535 5.7.8.
        return AuthResult(success=good, handled=False, auth_data=auth_data if good else None)
