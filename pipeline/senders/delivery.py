"""Delivering one touchpoint: the channels in order, each tried until it works or gives up.

For a dispatch record: if it has expired, it ends EXPIRED. Otherwise each channel the worker
listed (all allowed for this customer, best first) is tried in turn: render it, wait for the
provider's circuit breaker and rate limit, send, and on a retryable outcome back off (honouring
Retry-After) and try again, up to the retry policy's attempts and time. A permanent outcome, a
template error or a channel that ran out of attempts falls back to the next channel. The first
success ends it DELIVERED; when no channel is left it ends FAILED with the last reason.

Waiting is ``asyncio.sleep`` inside this touchpoint's own task: other touchpoints, other
customers and other channels go on meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from pipeline.channels.base import (
    ChannelSender,
    Delivered,
    Message,
    Permanent,
    Retryable,
)
from pipeline.clock import Clock
from pipeline.journeys import policies
from pipeline.journeys.model import Channel
from pipeline.metrics import BREAKER_VALUES, SenderMetrics
from pipeline.privacy import mask_address
from pipeline.records import Dispatch, Status
from pipeline.senders.resilience import CircuitBreaker, RetryPolicy, TokenBucket, backoff

log = logging.getLogger(__name__)


class Rendered(Protocol):
    @property
    def subject(self) -> str | None: ...

    @property
    def text(self) -> str: ...

    @property
    def html(self) -> str | None: ...

    @property
    def unsubscribe_url(self) -> str | None: ...


class Renderer(Protocol):
    def render(
        self, command: Mapping[str, Any], channel: str, locale: str | None = None
    ) -> Rendered: ...


class Reason(StrEnum):
    """Why a touchpoint did not end DELIVERED in the senders: a DeliveryOutcome's ``reason``."""

    EXPIRED = "expired"  # past its validity, before or while it was being sent
    TEMPLATE_ERROR = "template_error"  # it could not be rendered for the channel
    PROVIDER_REJECTED = "provider_rejected"  # a permanent answer: a bad address, a dead token
    PROVIDER_UNAVAILABLE = "provider_unavailable"  # retries, backoff and the breaker ran out
    NO_CHANNEL = "no_channel"  # no sender configured for the channel, or no address on it
    INTERNAL_ERROR = "internal_error"  # a bug in the senders, recorded rather than stuck


@dataclass(frozen=True)
class Result:
    """How a touchpoint ended in the senders: the fields of its DeliveryOutcome."""

    status: Status  # DELIVERED, FAILED or EXPIRED
    reason: Reason | None = None
    detail: str | None = None
    channel: Channel | None = None
    attempts: int = 0
    provider_id: str | None = None
    accepted_at: datetime | None = None


@dataclass(frozen=True)
class GaveUp:
    """Why one channel gave up on a touchpoint: the outcome's reason, and its detail."""

    code: Reason
    why: str


_EXPIRED = GaveUp(Reason.EXPIRED, "expired")


@dataclass
class ProviderGuard:
    """The breaker and rate limit one provider's calls share, across all touchpoints."""

    breaker: CircuitBreaker
    bucket: TokenBucket


@dataclass
class Deliverer:
    senders: Mapping[Channel, ChannelSender]
    renderer: Renderer
    clock: Clock
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    rate_per_second: float = 50.0
    burst: float = 50.0
    breaker_threshold: int = 5
    breaker_cool_off: float = 5.0
    rng: random.Random = field(default_factory=random.Random)
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    metrics: SenderMetrics = field(default_factory=SenderMetrics)
    guards: dict[str, ProviderGuard] = field(default_factory=dict)

    def guard(self, provider: str) -> ProviderGuard:
        if provider not in self.guards:
            self.guards[provider] = ProviderGuard(
                CircuitBreaker(self.breaker_threshold, self.breaker_cool_off),
                TokenBucket(self.rate_per_second, self.burst),
            )
        return self.guards[provider]

    async def deliver(self, dispatch: Dispatch) -> Result:
        if self.clock.now() > dispatch.expires_at:
            detail = f"valid until {dispatch.expires_at.isoformat()}"
            return Result(Status.EXPIRED, Reason.EXPIRED, detail)
        attempts = 0
        code, reason = Reason.NO_CHANNEL, "no channel to try"
        last: Channel | None = None
        for position, channel in enumerate(dispatch.channels):
            last = channel
            sender = self.senders.get(channel)
            address = _address(dispatch, channel)
            if sender is None or not address:
                code = Reason.NO_CHANNEL
                reason = f"{channel.value}: no {'sender' if sender is None else 'address'}"
                continue
            try:
                rendered = self.renderer.render(dispatch.record, channel.value)
            except Exception as error:  # TemplateError, and anything a template does wrong
                code, reason = Reason.TEMPLATE_ERROR, f"{channel.value}: template: {error}"
                log.warning("touchpoint %s: %s", dispatch.touchpoint_id, reason)
                continue
            message = _message(dispatch, channel, address, rendered)
            last_channel = position == len(dispatch.channels) - 1
            deadline = self._budget(dispatch.expires_at, last=last_channel)
            result, used = await self._try_channel(sender, message, dispatch, deadline)
            attempts += used
            if isinstance(result, Delivered):
                return Result(
                    Status.DELIVERED,
                    channel=channel,
                    attempts=attempts,
                    provider_id=result.provider_id,
                    accepted_at=result.accepted_at,
                )
            if result.code is Reason.EXPIRED:
                detail = "expired while retrying"
                return Result(Status.EXPIRED, Reason.EXPIRED, detail, channel, attempts)
            code, reason = result.code, f"{channel.value}: {result.why}"
            log.info(
                "touchpoint %s to %s on %s failed, falling back: %s",
                dispatch.touchpoint_id,
                mask_address(address),
                channel.value,
                result.why,
            )
        return Result(Status.FAILED, code, reason, last, attempts)

    def _budget(self, expires_at: datetime, *, last: bool) -> datetime:
        """Until when one channel may be retried, on the pipeline's clock (the clock validity is
        measured on). While other channels remain: ``max_seconds_per_channel``, and no more than
        ``fallback_share`` of the validity left, so that they still have time. The last channel
        may go on until the touchpoint expires (its attempts still count)."""
        if last:
            return expires_at
        now = self.clock.now()
        return min(
            now + timedelta(seconds=self.policy.max_seconds_per_channel),
            now + (expires_at - now) * self.policy.fallback_share,
        )

    def _past(self, deadline: datetime, real_seconds: float) -> bool:
        """Whether waiting ``real_seconds`` would end after ``deadline`` on the clock."""
        wait = timedelta(seconds=real_seconds * self.clock.factor)
        later: datetime = self.clock.now() + wait
        return later > deadline

    async def _try_channel(
        self,
        sender: ChannelSender,
        message: Message,
        dispatch: Dispatch,
        deadline: datetime,
    ) -> tuple[Delivered | GaveUp, int]:
        """Delivered, or why this channel gave up (:attr:`Reason.EXPIRED` when the touchpoint
        did: the last channel would only have sent it late)."""
        guard = self.guard(sender.provider)
        attempts = 0
        while True:
            # The rate limit first: only a send that has its token may take the breaker's probe.
            wait = guard.bucket.delay(self.monotonic())
            if wait == 0:
                wait = guard.breaker.wait(self.monotonic())
            if wait > 0:
                if self._past(deadline, wait):
                    if deadline >= dispatch.expires_at:
                        return _EXPIRED, attempts  # the last channel: it would be sent late
                    why = f"gave up: {sender.provider} unavailable (circuit open)"
                    return GaveUp(Reason.PROVIDER_UNAVAILABLE, why), attempts
                await self.sleep(wait)
                continue
            if self.clock.now() > dispatch.expires_at:
                guard.breaker.release()
                return _EXPIRED, attempts
            attempts += 1
            self.metrics.attempts.labels(message.channel.value).inc()
            if attempts > 1:
                self.metrics.retries.labels(message.channel.value).inc()
            called = self.monotonic()
            try:
                outcome = await sender.send(message)
            except BaseException:  # cancelled (revoked, stopping): the probe, if ours, is free
                guard.breaker.release()
                raise
            kind = type(outcome).__name__.lower()
            self.metrics.provider_request.labels(sender.provider, kind).observe(
                self.monotonic() - called
            )
            try:
                if isinstance(outcome, Delivered):
                    guard.breaker.succeeded()
                    return outcome, attempts
                if isinstance(outcome, Permanent):
                    guard.breaker.succeeded()  # the provider answered; the message is bad
                    why = f"permanent: {outcome.reason}"
                    return GaveUp(Reason.PROVIDER_REJECTED, why), attempts
            finally:
                self.metrics.breaker.labels(sender.provider).set(
                    BREAKER_VALUES[guard.breaker.state.value]
                )
            assert isinstance(outcome, Retryable)
            if outcome.throttled:  # slow down, all of us: the provider is up, just busy
                guard.bucket.pause(self.monotonic() + (outcome.retry_after or 1.0))
                guard.breaker.release()
            else:
                guard.breaker.failed(self.monotonic())
                self.metrics.breaker.labels(sender.provider).set(
                    BREAKER_VALUES[guard.breaker.state.value]
                )
            gave_up = GaveUp(
                Reason.PROVIDER_UNAVAILABLE,
                f"gave up after {attempts} attempts: {outcome.reason}",
            )
            if attempts >= self.policy.max_attempts:
                return gave_up, attempts
            pause = backoff(self.policy, attempts, outcome.retry_after, self.rng)
            if self._past(deadline, pause):
                if deadline >= dispatch.expires_at:
                    return _EXPIRED, attempts  # the last channel: it would be sent late
                return gave_up, attempts
            await self.sleep(pause)


def _address(dispatch: Dispatch, channel: Channel) -> str | None:
    recipient = dispatch.recipient
    return policies.address(
        channel,
        email=recipient.email,
        phone=recipient.phone,
        push_token=recipient.push_token,
        customer_id=dispatch.customer_id,
    )


def _message(dispatch: Dispatch, channel: Channel, address: str, rendered: Rendered) -> Message:
    return Message(
        touchpoint_id=dispatch.touchpoint_id,
        customer_id=dispatch.customer_id,
        journey=dispatch.journey,
        step=dispatch.step,
        order_id=dispatch.order_id,
        priority=dispatch.priority,
        channel=channel,
        address=address,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        locale=dispatch.recipient.locale,
        dispatch=dispatch,
        unsubscribe_url=rendered.unsubscribe_url,
    )
