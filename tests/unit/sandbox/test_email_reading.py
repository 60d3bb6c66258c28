"""The sandbox reads accepted email quickly for the usual shapes; the result must be what the
``email`` package's modern policy reads (the reference), for those shapes and every other."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest
from aiosmtplib.email import flatten_message

from pipeline.channels.email import EmailSender, SmtpSettings, _Composer
from pipeline.clock import ManualClock
from pipeline.sandbox.smtp import (
    _header_text,
    _parsed_header_text,
    _read_simple,
    read_message,
    read_message_modern,
)
from tests.unit.channels.test_email_compose import CASES, _message

NOW = datetime(2026, 3, 12, 9, 30, 5, tzinfo=UTC)


def _composed() -> dict[str, bytes]:
    sender = EmailSender(
        SmtpSettings("127.0.0.1", 25, "none", "", "", "Shop care <care@shop.example>"),
        ManualClock(NOW),
    )
    composed = {}
    for name, changes in CASES.items():
        raw = _Composer(sender).compose(_message(**changes), NOW)
        assert raw is not None
        composed[f"composed: {name}"] = raw
    return composed


def _by_hand() -> dict[str, bytes]:
    messages: dict[str, bytes] = {}
    email = EmailMessage()
    email["From"] = "Shop <care@shop.example>"
    email["To"] = "ada@example.org"
    email["Subject"] = "Ihre Bestellung: Bestätigung " * 4  # encoded and folded
    email["Message-ID"] = "<odd id with spaces@shop.example>"
    email["X-Aftercare-Touchpoint"] = "tp_1"
    email.set_content("Grüße\n" * 3)
    email.add_alternative("<p>Grüße</p>", subtype="html")
    email.add_attachment(b"PDF", maintype="application", subtype="pdf", filename="a.pdf")
    messages["mixed with an attachment"] = flatten_message(email)

    html_only = EmailMessage()
    html_only["Subject"] = "html only"
    html_only.set_content("<p>hi</p>", subtype="html")
    messages["html only"] = flatten_message(html_only)

    latin = EmailMessage()
    latin["Subject"] = "latin-1"
    latin.set_content("Grüße", charset="latin-1", cte="quoted-printable")
    messages["latin-1 quoted-printable"] = flatten_message(latin)

    base64 = EmailMessage()
    base64["Subject"] = "base64"
    base64["x-aftercare-touchpoint"] = "a second one, other case"
    base64["X-Aftercare-Touchpoint"] = "=?utf-8?q?encoded?="
    base64.set_content("Grüße " * 40, cte="base64")
    messages["base64, duplicate headers"] = flatten_message(base64)

    legacy = MIMEMultipart("alternative")
    legacy["Subject"] = "from smtplib's world"
    legacy["Message-ID"] = "<legacy.1@example.org>"
    legacy.attach(MIMEText("plain words", "plain", "utf-8"))
    legacy.attach(MIMEText("<b>html words</b>", "html", "utf-8"))
    messages["email.mime, base64 parts"] = legacy.as_bytes()

    related = EmailMessage()
    related.set_content("text")
    related.add_related("<img>", subtype="html")
    messages["related"] = flatten_message(related)

    messages["bare text, no MIME headers"] = b"Subject: hello\r\n\r\nJust words.\r\n"
    messages["8-bit header"] = "Subject: Grüße\r\n\r\nbody\r\n".encode()
    messages["folded plain header"] = (
        b"Subject: a long\r\n subject line\r\nX-Aftercare-Touchpoint: tp_1\r\n"
        b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit\r\n'
        b"\r\nbody\r\n"
    )
    messages["empty"] = b""

    composed = next(iter(_composed().values()))
    messages["bare line feeds"] = composed.replace(b"\r\n", b"\n")
    head, _, body = composed.partition(b"\r\n\r\n")
    messages["preamble"] = head + b"\r\n\r\nThis is a MIME message.\r\n" + body
    messages["epilogue"] = composed + b"trailing words\r\n"
    messages["no closing delimiter"] = composed[: composed.rindex(b"\r\n--")] + b"\r\n"
    messages["a line that is not a header"] = b"Subject: x\r\nnot a header\r\n\r\nbody\r\n"
    messages["a fold before any header"] = b" folded\r\nSubject: x\r\n\r\nbody\r\n"
    messages["base64 with bad padding"] = (
        b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n'
        b"\r\nR3L\r\n"
    )
    return messages


CORPUS = {**_composed(), **_by_hand()}


@pytest.mark.parametrize("raw", CORPUS.values(), ids=CORPUS.keys())
def test_reading_a_message_gives_what_the_modern_policy_reads(raw: bytes) -> None:
    assert read_message(raw) == read_message_modern(raw)


@pytest.mark.parametrize("raw", _composed().values(), ids=_composed().keys())
def test_what_the_senders_write_is_read_the_quick_way(raw: bytes) -> None:
    assert _read_simple(raw) is not None


def test_header_values_kept_as_they_are_are_those_the_modern_policy_gives() -> None:
    rng = random.Random(7)
    characters = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~.()<>@,;:\\\"[]"
    names = ["Subject", "X-Aftercare-Touchpoint", "List-Unsubscribe", "Message-ID", "X-Other"]
    names += ["To", "From", "Reply-To"]
    for _ in range(3000):
        words = [
            "".join(rng.choice(characters) for _ in range(rng.randint(1, 30)))
            for _ in range(rng.randint(1, 4))
        ]
        name = rng.choice(names)
        value = " ".join(words)
        if name == "Message-ID":
            local = "".join(rng.choice(string.ascii_letters + "._+-") for _ in range(20))
            value = f"<{local}@{rng.choice(['shop.example', 'a-b.example.org'])}>"
        if name in ("To", "From", "Reply-To"):
            atext = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~."
            local = "".join(rng.choice(atext) for _ in range(rng.randint(1, 20)))  # odd dots too
            domain = rng.choice(["shop.example", "a-b.example.org", "-x.example", "x..example"])
            value = rng.choice([f"{local}@{domain}", f"Ada <{local}@{domain}>"])
        assert _header_text(name, value) == _parsed_header_text(name, value), (name, value)
    boundary = 'multipart/alternative; boundary="===============0123456789012345678=="'
    assert _header_text("Content-Type", boundary) == _parsed_header_text("Content-Type", boundary)
