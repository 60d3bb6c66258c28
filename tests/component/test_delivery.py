"""Delivering one touchpoint across channels that succeed, fail, throttle and break.

The channels here are scripted stand-ins for providers (the real ones are tested against the
sandbox in the channel contract suite); time is a fake clock that sleeping advances.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pipeline.channels.base import Delivered, Message, Permanent, Retryable, SendResult
from pipeline.clock import ManualClock
from pipeline.journeys.model import Channel
from pipeline.records import Dispatch
from pipeline.senders.delivery import Deliverer
from pipeline.senders.resilience import RetryPolicy
from tests.samples import T0, touchpoint_command


@dataclass(frozen=True)
class Text:
    subject: str | None
    text: str
    html: str | None
    unsubscribe_url: str | None = None


class Renderer:
    def __init__(self, broken: set[str] | None = None) -> None:
        self.broken = broken or set()

    def render(self, command: Mapping[str, Any], channel: str, locale: str | None = None) -> Text:
        if channel in self.broken:
            raise ValueError(f"{command['template']}.{channel.lower()}.j2: 'items' is undefined")
        return Text("Subject", f"{command['journey']} on {channel}", None)


class Scripted:
    """A channel that answers with the outcomes it is given, in order, then the last forever."""

    def __init__(self, channel: Channel, *answers: SendResult, provider: str | None = None) -> None:
        self.channel = channel
        self.provider = provider or channel.value
        self.answers = list(answers)
        self.calls: list[Message] = []

    async def send(self, message: Message) -> SendResult:
        self.calls.append(message)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    async def close(self) -> None:
        return None


class FakeTime:
    def __init__(self, clock: ManualClock) -> None:
        self.now = 0.0
        self.clock = clock
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        self.clock.advance(timedelta(seconds=seconds))


OK = Delivered("provider-1", T0)


def _deliverer(
    *senders: Scripted, renderer: Renderer | None = None, **policy: Any
) -> tuple[Deliverer, FakeTime]:
    clock = ManualClock(T0)
    fake = FakeTime(clock)
    deliverer = Deliverer(
        {s.channel: s for s in senders},
        renderer or Renderer(),
        clock,
        RetryPolicy(**({"max_attempts": 4, "base_seconds": 1, "cap_seconds": 8} | policy)),
        breaker_threshold=3,
        breaker_cool_off=10,
        rng=random.Random(3),
        monotonic=fake.monotonic,
        sleep=fake.sleep,
    )
    return deliverer, fake


def _command(*channels: str, **overrides: Any) -> Dispatch:
    recipient = {
        "email": "ada@example.org",
        "phone": "+4915112345678",
        "push_token": "tok",
        "locale": "en",
        "timezone": "UTC",
    }
    return Dispatch.of(
        touchpoint_command(channels=list(channels), recipient=recipient, **overrides)
    )


async def test_the_first_channel_that_works_delivers() -> None:
    email = Scripted(Channel.EMAIL, OK)
    deliverer, _ = _deliverer(email)
    result = await deliverer.deliver(_command("EMAIL"))
    assert (result.status, result.channel, result.attempts, result.provider_id) == (
        "DELIVERED",
        Channel.EMAIL,
        1,
        "provider-1",
    )
    assert email.calls[0].address == "ada@example.org"


async def test_a_permanent_failure_falls_back_to_the_next_channel() -> None:
    sms = Scripted(Channel.SMS, Permanent("Invalid 'To' Phone Number"))
    email = Scripted(Channel.EMAIL, OK)
    deliverer, _ = _deliverer(sms, email)
    result = await deliverer.deliver(_command("SMS", "EMAIL"))
    assert (result.status, result.channel, result.attempts) == ("DELIVERED", Channel.EMAIL, 2)
    assert len(sms.calls) == 1


async def test_retryable_failures_back_off_and_honour_retry_after() -> None:
    sms = Scripted(Channel.SMS, Retryable("429", retry_after=7.0), Retryable("503"), OK)
    deliverer, time = _deliverer(sms)
    result = await deliverer.deliver(_command("SMS"))
    assert (result.status, result.attempts) == ("DELIVERED", 3)
    assert time.waits[0] >= 7.0
    assert 0 <= time.waits[1] <= 2


async def test_a_channel_that_keeps_failing_gives_up_then_the_next_one_is_tried() -> None:
    push = Scripted(Channel.PUSH, Retryable("503 UNAVAILABLE"))
    email = Scripted(Channel.EMAIL, OK)
    deliverer, _ = _deliverer(push, email, max_attempts=3)
    result = await deliverer.deliver(_command("PUSH", "EMAIL"))
    assert (result.status, result.channel, result.attempts) == ("DELIVERED", Channel.EMAIL, 4)
    assert len(push.calls) == 3


async def test_when_no_channel_works_it_fails_with_the_reason() -> None:
    sms = Scripted(Channel.SMS, Permanent("Invalid 'To' Phone Number"))
    deliverer, _ = _deliverer(sms)
    result = await deliverer.deliver(_command("SMS"))
    assert (result.status, result.reason, result.channel) == (
        "FAILED",
        "provider_rejected",
        Channel.SMS,
    )
    assert "Invalid 'To' Phone Number" in (result.detail or "")


async def test_an_expired_touchpoint_is_never_sent() -> None:
    email = Scripted(Channel.EMAIL, OK)
    deliverer, _ = _deliverer(email)
    result = await deliverer.deliver(_command("EMAIL", expires_at=T0 - timedelta(seconds=1)))
    assert result.status == "EXPIRED"
    assert email.calls == []


async def test_it_expires_while_retrying_rather_than_going_out_late() -> None:
    email = Scripted(Channel.EMAIL, Retryable("421 try later"))
    deliverer, _ = _deliverer(
        email, max_attempts=50, cap_seconds=60, max_seconds_per_channel=10_000
    )
    result = await deliverer.deliver(_command("EMAIL", expires_at=T0 + timedelta(minutes=5)))
    assert (result.status, result.reason) == ("EXPIRED", "expired")


async def test_a_template_error_is_a_failed_outcome_with_the_reason_not_a_crash() -> None:
    email = Scripted(Channel.EMAIL, OK)
    deliverer, _ = _deliverer(email, renderer=Renderer(broken={"EMAIL"}))
    result = await deliverer.deliver(_command("EMAIL"))
    assert (result.status, result.reason) == ("FAILED", "template_error")
    assert "'items' is undefined" in (result.detail or "")
    assert email.calls == []


async def test_an_open_breaker_makes_later_touchpoints_wait_instead_of_hammering() -> None:
    sms = Scripted(Channel.SMS, Retryable("503"), Retryable("503"), Retryable("503"), OK)
    deliverer, time = _deliverer(sms, max_attempts=10, base_seconds=0.1, cap_seconds=0.1)
    result = await deliverer.deliver(_command("SMS"))
    assert result.status == "DELIVERED"
    assert max(time.waits) >= 9  # after three failures in a row the provider was left alone
    assert len(sms.calls) == 4


async def test_throttling_slows_everyone_down_but_never_opens_the_breaker() -> None:
    storm = [Retryable("429", retry_after=2.0, throttled=True)] * 8
    sms = Scripted(Channel.SMS, *storm, OK)
    deliverer, time = _deliverer(sms, max_attempts=20)
    result = await deliverer.deliver(_command("SMS"))
    assert (result.status, result.attempts) == ("DELIVERED", 9)
    assert deliverer.guard(sms.provider).breaker.failures == 0
    assert all(wait >= 2.0 for wait in time.waits)


async def test_a_half_open_breaker_and_a_busy_rate_limit_never_lock_a_provider() -> None:
    # Three outages open the breaker; when it half-opens, the one probe is throttled (429).
    answers = [Retryable("503")] * 3 + [Retryable("429", retry_after=1.0, throttled=True), OK]
    sms = Scripted(Channel.SMS, *answers)
    deliverer, _ = _deliverer(sms, max_attempts=10, base_seconds=0.1, cap_seconds=0.1)
    deliverer.rate_per_second, deliverer.burst = 1.0, 1.0  # a token a second: the bucket waits too
    result = await deliverer.deliver(_command("SMS"))
    assert (result.status, result.attempts) == ("DELIVERED", 5)
    second = await deliverer.deliver(_command("SMS"))  # the provider is usable afterwards
    assert second.status == "DELIVERED"


class _FastClock(ManualClock):
    """A clock 3,600 times faster than the (fake) real time that sleeping advances."""

    factor = 3600.0


async def test_on_an_accelerated_clock_a_channel_down_falls_back_within_validity() -> None:
    # An SMTP outage in a demo at x3600: 120 s of retry budget is 120 s on the pipeline's clock,
    # not 120 real seconds (five simulated days), so the confirmation goes out in-app at once.
    email = Scripted(Channel.EMAIL, Retryable("421 4.3.2 service not available"))
    in_app = Scripted(Channel.IN_APP, OK)
    clock = _FastClock(T0)
    fake = FakeTime(clock)

    async def sleep(seconds: float) -> None:
        fake.waits.append(seconds)
        fake.now += seconds
        clock.advance(timedelta(seconds=seconds * clock.factor))

    deliverer = Deliverer(
        {Channel.EMAIL: email, Channel.IN_APP: in_app},
        Renderer(),
        clock,
        RetryPolicy(max_attempts=6, base_seconds=0.5, cap_seconds=30, max_seconds_per_channel=120),
        rng=random.Random(3),
        monotonic=fake.monotonic,
        sleep=sleep,
    )
    result = await deliverer.deliver(
        _command("EMAIL", "IN_APP", expires_at=T0 + timedelta(hours=24))
    )
    assert (result.status, result.channel) == ("DELIVERED", Channel.IN_APP)
    assert clock.now() - T0 <= timedelta(seconds=120)


async def test_a_channel_never_spends_more_than_half_the_validity_left_while_others_remain() -> (
    None
):
    email = Scripted(Channel.EMAIL, Retryable("421 try later"))
    sms = Scripted(Channel.SMS, OK)
    deliverer, time = _deliverer(
        email, sms, max_attempts=50, cap_seconds=60, max_seconds_per_channel=10_000
    )
    result = await deliverer.deliver(
        _command("EMAIL", "SMS", expires_at=T0 + timedelta(minutes=10))
    )
    assert (result.status, result.channel) == ("DELIVERED", Channel.SMS)
    assert sum(time.waits) <= 5 * 60  # email gave up within half of the ten minutes
    assert len(email.calls) > 1  # it was retried, not dropped at once


async def test_a_failure_is_named_by_the_last_channel_tried() -> None:
    sms = Scripted(Channel.SMS, Permanent("Invalid 'To' Phone Number"))
    push = Scripted(Channel.PUSH, Retryable("503 UNAVAILABLE"))
    deliverer, _ = _deliverer(sms, push, max_attempts=2)
    result = await deliverer.deliver(_command("SMS", "PUSH"))
    assert (result.status, result.reason, result.channel, result.attempts) == (
        "FAILED",
        "provider_unavailable",
        Channel.PUSH,
        3,
    )
    assert (result.detail or "").startswith("PUSH: gave up after 2 attempts: 503")


async def test_a_channel_without_a_sender_or_an_address_fails_as_no_channel() -> None:
    email = Scripted(Channel.EMAIL, OK)
    deliverer, _ = _deliverer(email)
    no_sender = await deliverer.deliver(_command("WHATSAPP"))
    assert (no_sender.status, no_sender.reason, no_sender.detail) == (
        "FAILED",
        "no_channel",
        "WHATSAPP: no sender",
    )
    recipient = {
        "email": None,
        "phone": None,
        "push_token": None,
        "locale": "en",
        "timezone": "UTC",
    }
    dispatch = Dispatch.of(touchpoint_command(channels=["EMAIL"], recipient=recipient))
    no_address = await deliverer.deliver(dispatch)
    assert (no_address.reason, no_address.detail, no_address.attempts) == (
        "no_channel",
        "EMAIL: no address",
        0,
    )
    assert email.calls == []
