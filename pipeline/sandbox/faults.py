"""Fault injection: make a stand-in provider slow, flaky, throttled, down or picky, on demand.

Real providers fail in a handful of ways that need different handling from a sender: a slow answer
(time-outs), a transient error (retry with back-off), throttling (wait for ``Retry-After``), an
outage (every attempt fails for a while; circuit breakers, dead letters) and a permanent refusal
(never retry). A fault suite also needs a crash at the worst moment: ``kill_after_accept`` names
processes (pids) that the sandbox SIGKILLs right after it has accepted the channel's next message
and before it answers, so the sender never learns that the provider took it (once, then cleared).
Each channel has its own :class:`Faults`, changed at run time (``PUT
/_sandbox/faults/{channel}`` or ``aftercare sandbox fault``), so a test can turn a fault on, watch
the pipeline cope, and turn it off again without restarting anything.

Rates are probabilities drawn from an injected, seedable :class:`random.Random`; a rate of 0 or 1
draws nothing, so tests that use only those are deterministic whatever the seed. The outage window
is wall-clock time (``outage_until``, Unix seconds) read through an injected clock function.

This module decides; it never answers. Each server turns a :class:`Verdict` into its own protocol's
words (HTTP status and provider-shaped body, SMTP reply code).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pipeline.sandbox.store import CHANNELS, Channel


class FaultError(ValueError):
    """A fault setting that cannot be applied; the message names the channel and the field."""


@dataclass(frozen=True)
class Faults:
    """What is wrong with one channel's provider right now. The defaults: nothing."""

    latency_ms: float = 0.0  # added before every answer
    error_rate: float = 0.0  # share of requests answered with a retryable error (5xx, SMTP 451)
    throttle_rate: float = 0.0  # share answered "too many requests" (429, SMTP 421 4.7.0)
    retry_after_s: int = 1  # the Retry-After of a throttled answer, in whole seconds
    outage_until: float | None = None  # Unix seconds; before then every request fails (503, 421)
    reject_rate: float = 0.0  # share refused permanently (400, SMTP 550)
    kill_after_accept: tuple[int, ...] = ()  # pids SIGKILLed after the next accepted message

    def to_json(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        fields["kill_after_accept"] = list(self.kill_after_accept)
        return fields


FAULT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Faults))
_RATES = ("error_rate", "throttle_rate", "reject_rate")


class Outcome(StrEnum):
    PASS = "pass"  # no injected fault: the server answers as the real provider would
    OUTAGE = "outage"
    THROTTLED = "throttled"
    FAILED = "failed"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Verdict:
    """The faults drawn for one request: wait ``latency_s``, then apply ``outcome``."""

    outcome: Outcome
    latency_s: float
    retry_after_s: int


def updated(channel: str, current: Faults, changes: Mapping[str, object]) -> Faults:
    """``current`` with ``changes`` (a subset of the fields) applied, each validated."""
    unknown = sorted(set(changes) - set(FAULT_FIELDS))
    if unknown:
        raise FaultError(
            f"faults for {channel}: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"the fields are {', '.join(FAULT_FIELDS)}"
        )
    values: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "kill_after_accept":
            values[name] = _pids(channel, value)
            continue
        if name == "outage_until" and value is None:
            values[name] = None
            continue
        # bool is an int to Python, but `"error_rate": true` is a mistake, not 1.0.
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise FaultError(
                f"faults for {channel}: {name} must be a number"
                + (" or null" if name == "outage_until" else "")
                + f", got {value!r}"
            )
        if name in _RATES and not 0 <= value <= 1:
            raise FaultError(
                f"faults for {channel}: {name} is a probability from 0 to 1, got {value!r}"
            )
        if name in ("latency_ms", "retry_after_s") and value < 0:
            raise FaultError(f"faults for {channel}: {name} cannot be negative, got {value!r}")
        if name == "retry_after_s" and value != int(value):
            raise FaultError(
                f"faults for {channel}: retry_after_s is whole seconds (it becomes a Retry-After "
                f"header), got {value!r}"
            )
        values[name] = int(value) if name == "retry_after_s" else float(value)
    return dataclasses.replace(current, **values)


def _pids(channel: str, value: object) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(pid, int) and not isinstance(pid, bool) and pid > 1 for pid in value
    ):
        raise FaultError(
            f"faults for {channel}: kill_after_accept is a list of process ids, got {value!r}"
        )
    return tuple(value)


class FaultInjector:
    """The current :class:`Faults` of every channel, and the draw for each request."""

    def __init__(self, rng: random.Random, wall: Callable[[], float] = time.time) -> None:
        self._rng = rng
        self._wall = wall
        self._faults: dict[Channel, Faults] = dict.fromkeys(CHANNELS, Faults())

    def get(self, channel: Channel) -> Faults:
        return self._faults[channel]

    def all(self) -> dict[Channel, Faults]:
        return dict(self._faults)

    def update(self, channel: Channel, changes: Mapping[str, object]) -> Faults:
        """Apply a subset of the fields (validated, all or nothing); returns the new faults."""
        new = updated(channel, self._faults[channel], changes)
        self._faults[channel] = new
        return new

    def reset(self, channel: Channel | None = None) -> None:
        """No faults on ``channel``, or on every channel."""
        for name in CHANNELS if channel is None else (channel,):
            self._faults[name] = Faults()

    def in_outage(self, channel: Channel) -> bool:
        until = self._faults[channel].outage_until
        return until is not None and self._wall() < until

    def decide(self, channel: Channel) -> Verdict:
        """Draw the fault for one request. An outage wins over throttling, throttling over an
        error, an error over a rejection."""
        faults = self._faults[channel]
        outcome = Outcome.PASS
        if self.in_outage(channel):
            outcome = Outcome.OUTAGE
        elif self._hits(faults.throttle_rate):
            outcome = Outcome.THROTTLED
        elif self._hits(faults.error_rate):
            outcome = Outcome.FAILED
        elif self._hits(faults.reject_rate):
            outcome = Outcome.REJECTED
        return Verdict(outcome, faults.latency_ms / 1000, faults.retry_after_s)

    def accepted(self, channel: Channel) -> tuple[int, ...]:
        """Call right after ``channel`` accepted a message, before answering: SIGKILLs the
        processes its ``kill_after_accept`` names (once) and returns their pids."""
        pids = self._faults[channel].kill_after_accept
        if not pids:
            return ()
        self._faults[channel] = dataclasses.replace(self._faults[channel], kill_after_accept=())
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def _hits(self, rate: float) -> bool:
        if rate <= 0:
            return False
        return rate >= 1 or self._rng.random() < rate
