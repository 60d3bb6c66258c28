"""A signed JSON POST: the human hand-off (support tasks) and any CRM.

The body is the touchpoint as JSON. The signature header follows the widespread
``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` scheme, so receivers can check both who
sent it and that it is fresh; ``Idempotency-Key`` is the touchpoint id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from pipeline.channels.base import (
    Message,
    SendResult,
    post_to_provider,
)
from pipeline.clock import Clock
from pipeline.journeys.model import Channel


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


class WebhookSender:
    channel = Channel.WEBHOOK

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        secret: str,
        clock: Clock,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.provider = f"webhook:{httpx.URL(url).host}"
        self._client = client
        self._url = url
        self._secret = secret
        self._clock = clock
        self._wall = wall  # signatures are checked against the receiver's real clock

    async def send(self, message: Message) -> SendResult:
        body = json.dumps(_payload(message), separators=(",", ":"), default=str).encode()
        headers = {
            "Content-Type": "application/json",
            "Aftercare-Signature": signature(self._secret, int(self._wall()), body),
            "Idempotency-Key": message.touchpoint_id,
        }
        return await post_to_provider(
            self._client,
            self.provider,
            self._url,
            message,
            self._clock,
            provider_id=lambda answer: answer.get("id"),
            content=body,
            headers=headers,
        )

    async def close(self) -> None:
        return None


def _payload(message: Message) -> dict[str, Any]:
    dispatch = message.dispatch
    return {
        "type": f"{message.journey}.{message.step}",
        "touchpoint_id": message.touchpoint_id,
        "customer_id": message.customer_id,
        "order_id": message.order_id,
        "priority": message.priority.value,
        "locale": message.locale,
        "summary": message.text,
        "context": dispatch.context,
        "trigger_occurred_at": dispatch.trigger_occurred_at,
    }
