"""SMS over an API shaped like Twilio's Messages resource.

``POST {base}/2010-04-01/Accounts/{sid}/Messages.json``, form-encoded To/From/Body, HTTP Basic auth
with the account SID and auth token, and the touchpoint id as ``I-Twilio-Idempotency-Token``: a
retried request cannot become a second text.
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


class SmsSender:
    channel = Channel.SMS

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        account_sid: str,
        auth_token: str,
        sender: str,
        clock: Clock,
    ) -> None:
        self.provider = f"sms:{httpx.URL(base_url).host}"
        self._client = client
        self._url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._from = sender
        self._clock = clock

    async def send(self, message: Message) -> SendResult:
        return await post_to_provider(
            self._client,
            self.provider,
            self._url,
            message,
            self._clock,
            provider_id=lambda answer: answer.get("sid"),
            data={"To": message.address, "From": self._from, "Body": message.text},
            auth=self._auth,
            headers={"I-Twilio-Idempotency-Token": message.touchpoint_id},
        )

    async def close(self) -> None:
        return None  # the shared client is closed by whoever made it
