"""Push notifications over an API shaped like FCM HTTP v1 ``messages:send``.

The device token comes from PUSH_TOKEN_REGISTERED events. An unregistered token (404) is permanent:
the app was removed, so the sender falls back to the next channel. The touchpoint id travels in the
data payload, where the app can report it back.
"""

from __future__ import annotations

import httpx

from pipeline.channels.base import (
    Message,
    Permanent,
    SendResult,
    post_to_provider,
)
from pipeline.clock import Clock
from pipeline.journeys.model import Channel


class PushSender:
    channel = Channel.PUSH

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, project_id: str, token: str, clock: Clock
    ) -> None:
        self.provider = f"push:{httpx.URL(base_url).host}"
        self._client = client
        self._url = f"{base_url.rstrip('/')}/v1/projects/{project_id}/messages:send"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._clock = clock

    async def send(self, message: Message) -> SendResult:
        payload = {
            "message": {
                "token": message.address,
                "notification": {"title": message.subject or "", "body": message.text},
                "data": {
                    "touchpoint_id": message.touchpoint_id,
                    "journey": message.journey,
                    "step": message.step,
                },
            }
        }
        return await post_to_provider(
            self._client,
            self.provider,
            self._url,
            message,
            self._clock,
            provider_id=lambda answer: answer.get("name"),
            refused=self._refused,
            json=payload,
            headers=self._headers,
        )

    def _refused(self, response: httpx.Response) -> Permanent | None:
        if response.status_code == 404:
            return Permanent(f"{self.provider}: the device token is no longer registered")
        return None

    async def close(self) -> None:
        return None
