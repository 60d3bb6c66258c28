"""Retries, rate limits and breakers, with time passed in by hand."""

from __future__ import annotations

import random

import pytest

from pipeline.senders.resilience import (
    BreakerState,
    CircuitBreaker,
    RetryPolicy,
    TokenBucket,
    backoff,
)


def test_backoff_grows_exponentially_within_the_cap_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_seconds=1, cap_seconds=8)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)]:
        waits = [backoff(policy, attempt, None, rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # full jitter spreads over the whole range
    assert 30.0 <= backoff(policy, 1, 30.0, rng) <= 31.0  # Retry-After, plus a little jitter
    assert 2.0 <= backoff(policy, 9, 2.0, rng) <= 4.0  # not the exponential ceiling


def test_a_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3)
    assert [bucket.delay(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.delay(0.0) == pytest.approx(0.1)
    assert bucket.delay(0.1) == 0.0
    assert bucket.delay(0.1) == pytest.approx(0.1)
    assert bucket.delay(10.0) == 0.0  # refilled, but never beyond the burst
    assert [bucket.delay(10.0) for _ in range(3)][-1] > 0


def test_a_breaker_opens_after_repeated_failures_and_probes_after_cooling_off() -> None:
    breaker = CircuitBreaker(threshold=3, cool_off=5)
    for t in range(3):
        assert breaker.wait(t) == 0.0
        breaker.failed(t)
    assert breaker.state is BreakerState.OPEN
    assert breaker.wait(3.0) == pytest.approx(4.0)
    assert breaker.wait(7.5) == 0.0  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.wait(7.6) > 0  # only one probe at a time
    breaker.failed(7.7)
    assert breaker.state is BreakerState.OPEN
    assert breaker.wait(12.8) == 0.0
    breaker.succeeded()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.wait(12.9) == 0.0


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(threshold=3)
    breaker.failed(0)
    breaker.failed(1)
    breaker.succeeded()
    breaker.failed(2)
    breaker.failed(3)
    assert breaker.state is BreakerState.CLOSED


def test_a_throttled_provider_pauses_the_whole_bucket() -> None:
    bucket = TokenBucket(rate=100, burst=100)
    bucket.pause(5.0)
    assert bucket.delay(1.0) == pytest.approx(4.0)
    assert bucket.delay(5.0) == 0.0
