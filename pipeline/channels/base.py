"""What every channel has in common: the message it is given, the result of sending it.

Every channel (email, SMS, WhatsApp, push, in-app, webhook) is a :class:`ChannelSender`: one
method, ``send``, that never raises for anything a provider or the network does. Errors are
classified once, here at the boundary, into one of three results (a :data:`SendResult`):

- :class:`Delivered`: the provider accepted the message, with its id for it;
- :class:`Retryable`: try again later (after ``retry_after`` seconds if the provider said so):
  throttling (429), a provider error (5xx), a timeout, a refused connection, an SMTP 4xx;
- :class:`Permanent`: this message will never be accepted on this channel: a bad address, an
  unregistered device, a rejected payload, an SMTP 5xx, a header-injection attempt. The sender
  falls back to the next channel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx

from pipeline.clock import Clock
from pipeline.journeys.model import Channel, Priority
from pipeline.records import Dispatch


@dataclass(frozen=True)
class Message:
    """One touchpoint, rendered for one channel, addressed to one recipient."""

    touchpoint_id: str
    customer_id: str
    journey: str
    step: str
    order_id: str | None
    priority: Priority
    channel: Channel
    address: str  # email address, E.164 number, push token, customer id (in-app), webhook name
    subject: str | None
    text: str
    html: str | None
    locale: str
    dispatch: Dispatch  # the whole command, for structured channels (webhook, in-app)
    unsubscribe_url: str | None = None  # email: its one-click link (the body offers the same)


@dataclass(frozen=True)
class Delivered:
    provider_id: str
    accepted_at: datetime


@dataclass(frozen=True)
class Retryable:
    reason: str
    retry_after: float | None = None  # seconds, when the provider said
    throttled: bool = False  # "slow down" (429), not "down": it pauses the provider, no breaker


@dataclass(frozen=True)
class Permanent:
    reason: str


SendResult = Delivered | Retryable | Permanent  # what one send came to


class ChannelSender(Protocol):
    channel: Channel
    provider: str  # names the circuit breaker and the rate limit this sender shares

    async def send(self, message: Message) -> SendResult: ...

    async def close(self) -> None: ...


async def post_to_provider(
    client: httpx.AsyncClient,
    provider: str,
    url: str,
    message: Message,
    clock: Clock,
    *,
    provider_id: Callable[[dict[str, Any]], object],
    refused: Callable[[httpx.Response], Permanent | None] | None = None,
    **request: Any,
) -> SendResult:
    """The one exchange every HTTP channel has with its provider: POST ``request``, and the
    answer as an outcome. ``provider_id`` picks the provider's id for the message out of its JSON
    answer (the touchpoint id stands in when it gives none); ``refused`` gives a status that
    means something of its own to this provider (push: 404, the device is gone) its outcome
    before the common classification."""
    try:
        response = await client.post(url, **request)
    except httpx.HTTPError as error:
        return classify_transport_error(error, provider)
    if response.is_success:
        found = provider_id(json_body(response))
        return Delivered(str(found or message.touchpoint_id), clock.now())
    special = refused(response) if refused is not None else None
    return special if special is not None else classify_http(response, provider)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (delta-seconds form), if present and sane."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date; rare from these APIs, and backoff covers it
    return seconds if 0 <= seconds <= 3600 else None


def classify_http(response: httpx.Response, provider: str) -> Retryable | Permanent:
    """A provider's non-2xx answer as an outcome, with the provider's own words in the reason."""
    detail = _error_text(response)
    reason = f"{provider} answered {response.status_code}: {detail}"
    if response.status_code == 429:
        return Retryable(reason, retry_after_seconds(response), throttled=True)
    if response.status_code in (408, 425) or response.status_code >= 500:
        return Retryable(reason, retry_after_seconds(response))
    return Permanent(reason)


def json_body(response: httpx.Response) -> dict[str, Any]:
    """A provider's JSON answer, or {} when it is empty or not JSON (accepted all the same)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def classify_transport_error(error: httpx.HTTPError, provider: str) -> Retryable:
    return Retryable(f"{provider} unreachable: {type(error).__name__}: {error}".rstrip(": "))


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("status") or error)[:200]
        return str(error)[:200]
    return str(body)[:200]


def has_line_break(*values: str | None) -> bool:
    """Header injection guard: no CR or LF may reach a header or an address."""
    return any(v is not None and ("\r" in v or "\n" in v) for v in values)
