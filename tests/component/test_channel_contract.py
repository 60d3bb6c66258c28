"""One contract, every channel: what a ChannelSender promises, checked against the sandbox.

Each channel runs against the provider sandbox over real sockets (SMTP for email, HTTP for SMS,
WhatsApp, push and the webhook). In-app's provider is the broker: its contract runs on the real
broker, in tests/integration/test_inapp_contract.py, clause for clause. Every channel must: deliver
and return the provider's id; keep the touchpoint id with the message; turn throttling and outages
into retryable outcomes (with Retry-After when the provider gives one); turn rejections into
permanent ones; and never raise. Channels whose provider takes an idempotency key must not store a
retried send twice.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from pipeline.channels import Delivered, Message, Permanent, Retryable, http_client
from pipeline.channels.base import ChannelSender
from pipeline.channels.email import EmailSender, SmtpSettings
from pipeline.channels.push import PushSender
from pipeline.channels.sms import SmsSender
from pipeline.channels.webhook import WebhookSender
from pipeline.channels.whatsapp import WhatsAppSender
from pipeline.clock import ManualClock
from pipeline.journeys.model import Channel, Priority
from pipeline.records import Dispatch
from pipeline.sandbox.server import Sandbox
from tests.samples import T0, touchpoint_command

HTTP_CHANNELS = ["email", "sms", "whatsapp", "push", "webhook"]
IDEMPOTENT = {"sms", "webhook"}  # the provider APIs that take an idempotency key


@dataclass
class Harness:
    name: str
    sender: ChannelSender
    address: str
    sandbox: Sandbox
    client: httpx.AsyncClient
    extra: dict[str, Any] = field(default_factory=dict)

    async def fault(self, **fields: Any) -> None:
        answer = await self.client.put(
            f"{self.sandbox.http_url}/_sandbox/faults/{self.name}", json=fields
        )
        assert answer.status_code == 200, answer.text

    async def stored(self, touchpoint_id: str) -> list[dict[str, Any]]:
        answer = await self.client.get(
            f"{self.sandbox.http_url}/_sandbox/messages",
            params={"channel": self.name, "touchpoint_id": touchpoint_id},
        )
        assert answer.status_code == 200, answer.text
        result: list[dict[str, Any]] = answer.json()
        return result


@pytest.fixture(params=HTTP_CHANNELS)
async def harness(request: pytest.FixtureRequest, sandbox: Sandbox) -> AsyncIterator[Harness]:
    config = sandbox.config
    clock = ManualClock(T0)
    client = http_client()
    name: str = request.param
    senders: dict[str, Callable[[], tuple[ChannelSender, str]]] = {
        "email": lambda: (
            EmailSender(
                SmtpSettings(
                    host="127.0.0.1",
                    port=sandbox.smtp_port,
                    tls="none",
                    username=config.smtp_username,
                    password=config.smtp_password,
                    sender="Shop care <care@shop.example>",
                    pool_size=2,
                ),
                clock,
            ),
            "ada@example.org",
        ),
        "sms": lambda: (
            SmsSender(
                client,
                f"{sandbox.http_url}/twilio",
                config.sms_account_sid,
                config.sms_auth_token,
                "+15005550006",
                clock,
            ),
            "+4915112345678",
        ),
        "whatsapp": lambda: (
            WhatsAppSender(
                client, f"{sandbox.http_url}/whatsapp", "1000000001", config.whatsapp_token, clock
            ),
            "+4915112345678",
        ),
        "push": lambda: (
            PushSender(
                client, f"{sandbox.http_url}/fcm", "aftercare-sandbox", config.push_token, clock
            ),
            "device-token-1",
        ),
        "webhook": lambda: (
            WebhookSender(
                client, f"{sandbox.http_url}/webhook/support", config.webhook_secret, clock
            ),
            "support",
        ),
    }
    sender, address = senders[name]()
    async with httpx.AsyncClient() as control:
        yield Harness(name, sender, address, sandbox, control)
    await sender.close()
    await client.aclose()


def _message(harness: Harness, **overrides: Any) -> Message:
    touchpoint = f"tp_{uuid.uuid4().hex[:16]}"
    command = touchpoint_command(touchpoint_id=touchpoint, event_id=touchpoint)
    fields: dict[str, Any] = {
        "touchpoint_id": touchpoint,
        "customer_id": "cust-1",
        "journey": "need_help",
        "step": "offer",
        "order_id": "order-1",
        "priority": Priority.ENGAGEMENT,
        "channel": Channel(harness.name.upper()),
        "address": harness.address,
        "subject": "Need a hand?",
        "text": "Our five-minute setup guide: https://shop.example/setup",
        "html": "<p>Our five-minute <a href='https://shop.example/setup'>setup guide</a></p>",
        "locale": "en",
        "dispatch": Dispatch.of(command),
        "unsubscribe_url": "https://preferences.shop.example/unsubscribe?token=signed",
    }
    fields.update(overrides)
    return Message(**fields)


async def test_it_delivers_and_the_provider_keeps_the_touchpoint_id(harness: Harness) -> None:
    message = _message(harness)
    outcome = await harness.sender.send(message)
    assert isinstance(outcome, Delivered), outcome
    assert outcome.provider_id
    stored = await harness.stored(message.touchpoint_id)
    assert len(stored) == 1
    assert (
        harness.address.lstrip("+") in stored[0]["recipient"].lstrip("+")
        or harness.name == "webhook"
    )


async def test_throttling_is_retryable(harness: Harness) -> None:
    await harness.fault(throttle_rate=1.0, retry_after_s=3)
    outcome = await harness.sender.send(_message(harness))
    assert isinstance(outcome, Retryable), outcome
    if harness.name != "email":  # SMTP has no Retry-After
        assert outcome.retry_after == 3


async def test_an_outage_is_retryable_and_recovery_delivers(harness: Harness) -> None:
    message = _message(harness)
    await harness.fault(outage_until=time.time() + 3600)
    assert isinstance(await harness.sender.send(message), Retryable)
    await harness.fault(outage_until=None)
    assert isinstance(await harness.sender.send(message), Delivered)
    assert len(await harness.stored(message.touchpoint_id)) == 1


async def test_a_rejection_is_permanent(harness: Harness) -> None:
    await harness.fault(reject_rate=1.0)
    outcome = await harness.sender.send(_message(harness))
    assert isinstance(outcome, Permanent), outcome
    assert outcome.reason


async def test_a_retried_send_is_stored_once_where_the_provider_takes_an_idempotency_key(
    harness: Harness,
) -> None:
    if harness.name not in IDEMPOTENT:
        pytest.skip(f"{harness.name}: the provider API takes no idempotency key")
    message = _message(harness)
    first = await harness.sender.send(message)
    again = await harness.sender.send(message)
    assert isinstance(first, Delivered)
    assert isinstance(again, Delivered)
    assert first.provider_id == again.provider_id
    assert len(await harness.stored(message.touchpoint_id)) == 1


async def test_an_unreachable_provider_is_retryable_not_an_exception(harness: Harness) -> None:
    await harness.sandbox.stop()
    outcome = await harness.sender.send(_message(harness))
    assert isinstance(outcome, Retryable), outcome
    await harness.sandbox.start()


async def test_email_refuses_header_injection(sandbox: Sandbox) -> None:
    sender = EmailSender(
        SmtpSettings("127.0.0.1", sandbox.smtp_port, "none", "", "", "care@shop.example"),
        ManualClock(T0),
    )
    harness = Harness("email", sender, "ada@example.org", sandbox, httpx.AsyncClient())
    outcome = await sender.send(_message(harness, subject="Hi\r\nBcc: everyone@example.org"))
    assert isinstance(outcome, Permanent)
    assert "header injection" in outcome.reason
    await harness.client.aclose()


async def test_engagement_email_has_one_click_unsubscribe_and_a_stable_message_id(
    sandbox: Sandbox,
) -> None:
    sender = EmailSender(
        SmtpSettings("127.0.0.1", sandbox.smtp_port, "none", "", "", "Care <care@shop.example>"),
        ManualClock(T0),
    )
    async with httpx.AsyncClient() as control:
        harness = Harness("email", sender, "ada@example.org", sandbox, control)
        message = _message(harness)
        assert isinstance(await sender.send(message), Delivered)
        (stored,) = await harness.stored(message.touchpoint_id)
        headers = stored["headers"]
        if isinstance(headers, str):
            headers = json.loads(headers)
        assert headers["Message-ID"] == f"<{message.touchpoint_id}@shop.example>"
        assert headers["List-Unsubscribe"] == f"<{message.unsubscribe_url}>"
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert stored["html"]
    await sender.close()
