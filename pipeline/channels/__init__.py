"""Channels: one module per way of reaching a customer, all behind :class:`ChannelSender`.

:func:`build_senders` makes every channel from the settings, sharing one pooled httpx client
among the HTTP providers.
"""

from __future__ import annotations

import importlib.util
import sys

import httpx

from pipeline.channels.base import (
    ChannelSender,
    Delivered,
    Message,
    Permanent,
    Retryable,
    SendResult,
)
from pipeline.channels.email import EmailSender, SmtpSettings
from pipeline.channels.inapp import InAppSender
from pipeline.channels.push import PushSender
from pipeline.channels.sms import SmsSender
from pipeline.channels.webhook import WebhookSender
from pipeline.channels.whatsapp import WhatsAppSender
from pipeline.clock import Clock
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.journeys.model import Channel
from pipeline.names import TopicRole
from pipeline.records import Publisher

__all__ = [
    "ChannelSender",
    "Delivered",
    "Message",
    "Permanent",
    "Retryable",
    "SendResult",
    "build_senders",
    "http_client",
]


def http_client(timeout: float = 10.0, connections: int = 100) -> httpx.AsyncClient:
    """One pooled client for every HTTP provider of a process (keep-alive, HTTP/1.1)."""
    _no_sniffio_search()
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=5.0),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


def build_senders(
    settings: Settings,
    client: httpx.AsyncClient,
    publisher: Publisher,
    schemas: SchemaSet,
    clock: Clock,
) -> dict[Channel, ChannelSender]:
    c = settings.channels
    senders: list[ChannelSender] = [
        EmailSender(
            SmtpSettings(
                host=c.smtp_host,
                port=c.smtp_port,
                tls=c.smtp_tls,
                username=c.smtp_username,
                password=c.smtp_password.get_secret_value(),
                sender=c.email_from,
                pool_size=c.smtp_pool_size,
            ),
            clock,
        ),
        SmsSender(
            client,
            c.sms_base_url,
            c.sms_account_sid,
            c.sms_auth_token.get_secret_value(),
            c.sms_from,
            clock,
        ),
        WhatsAppSender(
            client,
            c.whatsapp_base_url,
            c.whatsapp_phone_number_id,
            c.whatsapp_token.get_secret_value(),
            clock,
        ),
        PushSender(
            client, c.push_base_url, c.push_project_id, c.push_token.get_secret_value(), clock
        ),
        InAppSender(publisher, settings.topic(TopicRole.INBOX), schemas, clock),
        WebhookSender(client, c.webhook_url, c.webhook_secret.get_secret_value(), clock),
    ]
    return {sender.channel: sender for sender in senders}


def _no_sniffio_search() -> None:
    """httpcore runs ``import sniffio`` for every lock, event and shield it makes, several a
    request (httpcore/_synchronization.py, ``current_async_library``). Without sniffio installed
    (anyio 4 no longer needs it) each of those imports searches sys.path again and fails, a tenth
    of a sender's time. A None in sys.modules is Python's own "known to be missing": the import
    fails at once, exactly as before, only without the search."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]
