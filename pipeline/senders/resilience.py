"""Retries, rate limits and circuit breakers: how the senders treat providers that struggle.

All three are small state machines with the time passed in, so they are tested without sleeping:

- :func:`backoff`: the provider's Retry-After when it gives one (plus a little jitter, so that a
  crowd of retries does not return in one instant), else exponential with full jitter;
- :class:`TokenBucket`: at most ``rate`` sends a second per provider, bursts up to ``burst``;
  ``delay()`` says how long to wait for a token, so a waiting send never blocks anyone else; a
  provider that says "slow down" (429) pauses the whole bucket for its Retry-After;
- :class:`CircuitBreaker`: after ``threshold`` retryable failures in a row the provider is left
  alone for ``cool_off`` seconds (sends wait instead of piling on); then one probe is let through,
  and its outcome closes the breaker or opens it again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6  # per channel, then the next channel
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    # Seconds on the pipeline's clock (as validity is) spent retrying one channel; and, while
    # other channels remain, at most this share of the validity left, so that they have time.
    max_seconds_per_channel: float = 120.0
    fallback_share: float = 0.5


def backoff(
    policy: RetryPolicy, attempt: int, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
    ceiling = min(policy.cap_seconds, policy.base_seconds * 2 ** (attempt - 1))
    if retry_after is not None:
        return retry_after + rng.uniform(0, min(ceiling, retry_after))
    return rng.uniform(0, ceiling)


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    burst: float
    tokens: float = field(init=False)
    updated: float = field(init=False, default=0.0)
    started: bool = field(init=False, default=False)
    paused_until: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def delay(self, now: float) -> float:
        """Take a token if there is one (0.0); else how long until one comes (nothing taken)."""
        if now < self.paused_until:
            return self.paused_until - now
        if not self.started:
            self.started, self.updated = True, now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def pause(self, until: float) -> None:
        """The provider throttled us: nobody sends to it before ``until``."""
        self.paused_until = max(self.paused_until, until)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    threshold: int = 5
    cool_off: float = 5.0
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False

    def wait(self, now: float) -> float:
        """0.0 if a call may go now (and, half-open, reserve the probe); else seconds to wait."""
        if self.state is BreakerState.OPEN:
            remaining = self.opened_at + self.cool_off - now
            if remaining > 0:
                return remaining
            self.state = BreakerState.HALF_OPEN
            self.probing = False
        if self.state is BreakerState.HALF_OPEN:
            if self.probing:
                return min(self.cool_off, 0.25)  # one probe at a time; look again shortly
            self.probing = True
        return 0.0

    def succeeded(self) -> None:
        self.state, self.failures, self.probing = BreakerState.CLOSED, 0, False

    def release(self) -> None:
        """The probe ended without telling anything (throttled, cancelled): let another probe go."""
        self.probing = False

    def failed(self, now: float) -> None:
        """A retryable failure (an outage, throttling, a timeout). Permanent ones do not count."""
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.threshold:
            self.state, self.opened_at, self.probing = BreakerState.OPEN, now, False
