"""WhatsApp over an API shaped like the WhatsApp Cloud API ``messages`` endpoint.

``POST {base}/{version}/{phone_number_id}/messages`` with a bearer token and a text message. The
Cloud API takes no idempotency key; the touchpoint id travels as ``biz_opaque_callback_data`` (it
comes back on status webhooks) and the senders' own ledger keeps a retry from sending twice.
"""

from __future__ import annotations

import httpx

from pipeline.channels.base import (
    Message,
    SendResult,
    post_to_provider,
)
from pipeline.clock import Clock
from pipeline.journeys.model import Channel


class WhatsAppSender:
    channel = Channel.WHATSAPP

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        phone_number_id: str,
        token: str,
        clock: Clock,
        version: str = "v21.0",
    ) -> None:
        self.provider = f"whatsapp:{httpx.URL(base_url).host}"
        self._client = client
        self._url = f"{base_url.rstrip('/')}/{version}/{phone_number_id}/messages"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._clock = clock

    async def send(self, message: Message) -> SendResult:
        payload = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.address.lstrip("+"),
            "type": "text",
            "text": {"preview_url": True, "body": message.text},
            "biz_opaque_callback_data": message.touchpoint_id,
        }
        return await post_to_provider(
            self._client,
            self.provider,
            self._url,
            message,
            self._clock,
            provider_id=lambda answer: (answer.get("messages") or [{}])[0].get("id"),
            json=payload,
            headers=self._headers,
        )

    async def close(self) -> None:
        return None
