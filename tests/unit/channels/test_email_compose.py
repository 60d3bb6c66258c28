"""The email sender writes a message as bytes directly; they must be the bytes ``EmailMessage`` and
aiosmtplib's ``send_message`` would have sent (same headers, same parts, same encodings)."""

from __future__ import annotations

import email.contentmanager
import email.policy
import email.quoprimime
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from aiosmtplib.email import flatten_message
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.channels.base import Message
from pipeline.channels.email import (
    EmailSender,
    SmtpSettings,
    _Composer,
    _encode_text,
    _folded_by_policy,
    _multipart_type,
    _quoted_printable,
)
from pipeline.clock import ManualClock
from pipeline.journeys.model import Channel, Priority
from pipeline.records import Dispatch
from tests.samples import touchpoint_command

NOW = datetime(2026, 3, 12, 9, 30, 5, tzinfo=UTC)
LONG_LINE = "A line that goes on and on, far beyond seventy-eight characters, " * 3
HTML = '<html><body><p style="margin:0">Thank you for your order.</p></body></html>'


def _message(**changes: object) -> Message:
    values: dict[str, object] = {
        "touchpoint_id": "tp_0123456789abcdef0123456789abcdef",
        "customer_id": "cust-1",
        "journey": "order_confirmation",
        "step": "confirm",
        "order_id": "order-1",
        "priority": Priority.TRANSACTIONAL,
        "channel": Channel.EMAIL,
        "address": "ada@example.org",
        "subject": "Your order",
        "text": "Thank you for your order.\nSee you soon.",
        "html": HTML,
        "locale": "en",
        "dispatch": Dispatch.of(touchpoint_command()),
    }
    values.update(changes)
    return Message(**values)  # type: ignore[arg-type]


CASES = {
    "plain and html": {},
    "text only": {"html": None},
    "empty html means text only": {"html": ""},
    "engagement: unsubscribe headers": {
        "priority": Priority.ENGAGEMENT,
        "unsubscribe_url": "http://127.0.0.1:6068/unsubscribe?token=eyJjIjoiY3VzdC0xIn0.sig",
    },
    "unsubscribe url beyond a line": {
        "priority": Priority.MARKETING,
        "unsubscribe_url": "https://preferences.shop.example/unsubscribe?token=" + "t" * 180,
    },
    "german subject and body": {
        "subject": "Bestätigung Ihrer Bestellung, danke: „gut“!",
        "text": "Grüße aus München\nIhr Paket ist unterwegs.",
        "html": "<p>Grüße aus München</p>",
    },
    "long lines, quoted-printable or base64": {"text": LONG_LINE, "html": HTML * 4},
    "long non-ascii lines": {"text": "Größe " * 40, "html": "<p>" + "ü" * 120 + "</p>"},
    "many long lines": {"text": "\n".join([LONG_LINE] * 14), "html": "\n".join([HTML] * 30)},
    "long subject": {"subject": "Your order " * 12},
    "subject with odd spacing": {"subject": "  Your   order  "},
    "subject that looks encoded": {"subject": "=?utf-8?q?hello?="},
    "no subject": {"subject": None},
    "empty text": {"text": ""},
    "carriage returns in the body": {"text": "one\r\ntwo\rthree\n\nfour\n"},
    "a line that is a boundary": {"text": "--===============1234567890123456789==\nx"},
    "address with a display-like local part": {"address": "ada.lovelace+orders@mail.example.org"},
    "address with specials": {"address": "o'neil/x=y{z}@example.org"},
    "address just within a line": {"address": "a" * 62 + "@example.org"},
    "address just beyond a line": {"address": "a" * 63 + "@example.org"},
    "address beyond a line": {"address": "a" * 80 + "@example.org"},
    "address with odd dots": {"address": ".ada..l.@example.org"},
    "long touchpoint id": {"touchpoint_id": "tp_" + "x" * 100},
    "spaces in journey names": {"journey": "order confirmation", "step": "first step"},
}


@pytest.mark.parametrize("changes", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize(
    "sender", ["Shop care <care@shop.example>", '"Shop, Care" <care@shop.example>']
)
@pytest.mark.parametrize("now", [NOW, NOW.astimezone(timezone(timedelta(hours=2)))])
def test_the_composed_bytes_are_those_send_message_would_send(
    changes: dict[str, object], sender: str, now: datetime
) -> None:
    email_sender = EmailSender(
        SmtpSettings("127.0.0.1", 25, "none", "", "", sender), ManualClock(NOW)
    )
    message = _message(**changes)
    seed = random.randrange(1 << 30)
    random.seed(seed)  # both take the MIME boundary from the random module
    direct = _Composer(email_sender).compose(message, now)
    random.seed(seed)
    expected = flatten_message(email_sender._compose(message, now))
    assert direct == expected


@pytest.mark.parametrize(
    "changes",
    [{"touchpoint_id": "tp_1\r\nBcc: x@example.org"}, {"journey": "a\nb"}],
    ids=["touchpoint id", "journey"],
)
def test_values_with_line_breaks_are_left_to_email_message(changes: dict[str, object]) -> None:
    email_sender = EmailSender(
        SmtpSettings("127.0.0.1", 25, "none", "", "", "care@shop.example"), ManualClock(NOW)
    )
    assert _Composer(email_sender).compose(_message(**changes), NOW) is None


@pytest.mark.parametrize(
    "text",
    [
        "--===============0000000000000000042==\nthe boundary as a line",
        "--===============0000000000000000042==--\nand as the closing line",
        "inside a line: --===============0000000000000000042== is not a boundary",
    ],
)
def test_a_boundary_already_in_a_part_is_chosen_as_the_generator_chooses(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    email_sender = EmailSender(
        SmtpSettings("127.0.0.1", 25, "none", "", "", "care@shop.example"), ManualClock(NOW)
    )
    monkeypatch.setattr(random, "randrange", lambda _: 42)
    message = _message(text=text)
    direct = _Composer(email_sender).compose(message, NOW)
    assert direct == flatten_message(email_sender._compose(message, NOW))


@pytest.mark.parametrize(
    "boundary",
    ["===============0000000000000000042==", "===============9999999999999999999==.12"],
)
def test_the_multipart_header_is_the_policys_fold(boundary: str) -> None:
    value = f'multipart/alternative; boundary="{boundary}"'
    assert _multipart_type(boundary) == _folded_by_policy("Content-Type", value)


# Characters that make quoted-printable work: quoted ones, '=' near where a line breaks,
# whitespace at a line's end, every kind of line end.
_QP_TEXT = st.text(
    st.one_of(
        st.sampled_from(list("aZ =\t.\r\n\x0b\x0c\x85ü€✓")),
        st.characters(codec="utf-8"),
    ),
    max_size=400,
)


@settings(max_examples=1500, deadline=None)
@given(
    body=st.one_of(
        st.text(st.characters(max_codepoint=255), max_size=300),
        st.text(st.sampled_from(list("aa= \t\nü")), max_size=300),  # edges of a line, often
    ),
    width=st.integers(4, 100),
)
def test_quoted_printable_is_the_email_packages(body: str, width: int) -> None:
    assert _quoted_printable(body, width) == email.quoprimime.body_encode(body, width)


@settings(max_examples=400, deadline=None)
@given(
    text=st.one_of(
        _QP_TEXT,
        st.builds(lambda a, b: a * 3 + b, _QP_TEXT, _QP_TEXT),
        st.lists(
            st.sampled_from([LONG_LINE, "x" * 77 + "=", "ü" * 40, " \t", ""]), max_size=14
        ).map("\n".join),
    )
)
def test_the_text_encoding_is_set_contents(text: str) -> None:
    expected = email.contentmanager._encode_text(text, "utf-8", None, email.policy.default)  # type: ignore[attr-defined]
    assert _encode_text(text) == expected
