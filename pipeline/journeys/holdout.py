"""Holdout groups: customers who, by a fixed rule, do not get a journey's messages, so that what
the messages change can be measured against them.

A customer is held out of a *unit* (a journey, one step of a journey, or every engagement and
marketing touchpoint: the global holdout) when a keyed hash of the unit and the customer id falls
in the unit's share of the hash range. Nothing is stored and nothing is random: the same key,
customer and unit give the same answer on every worker, after every restart, in the simulator and in
an analyst's notebook. Units are independent of each other: being held out of one journey says
nothing about another. Changing the key draws new groups (a new experiment); keep it for as long as
a measurement runs.

Transactional touchpoints are owed to the customer and are never held out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from pipeline.journeys.model import Priority

BASIS_POINTS = 10_000  # shares are kept in hundredths of a percent: 10% is 1000
DEFAULT_KEY = "aftercare-holdout-v1"
GLOBAL_UNIT = "global"


def bucket(key: str, unit: str, customer_id: str) -> int:
    """Where ``customer_id`` falls in ``unit``'s hash range, 0 to 9,999 (uniform)."""
    secret = hashlib.sha256(key.encode("utf-8")).digest()  # any key length, blake2b takes 64 B
    digest = hashlib.blake2b(
        f"{unit}\x1f{customer_id}".encode(), key=secret, digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") * BASIS_POINTS >> 64


def held_out(key: str, unit: str, customer_id: str, share: int) -> bool:
    """Whether ``customer_id`` is in the ``share`` (basis points) of ``unit`` that is held out."""
    return share > 0 and bucket(key, unit, customer_id) < share


def journey_unit(journey: str) -> str:
    return f"journey:{journey}"


def step_unit(journey: str, step: str) -> str:
    return f"step:{journey}.{step}"


def percent(share: int) -> str:
    """A share in basis points as people write it: 1000 -> "10%", 250 -> "2.5%"."""
    return f"{share / 100:.2f}".rstrip("0").rstrip(".") + "%"


@dataclass(frozen=True)
class Holdouts:
    """Every holdout of a journeys file: the key, the global share, per journey and per step."""

    key: str = DEFAULT_KEY
    global_share: int = 0  # of customers, out of every engagement and marketing touchpoint
    journeys: Mapping[str, int] = field(default_factory=dict)  # journey -> basis points
    steps: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (journey, step) -> bp

    @cached_property
    def any(self) -> bool:
        return self.global_share > 0 or any(self.journeys.values()) or any(self.steps.values())

    def reason(self, customer_id: str, journey: str, step: str, priority: Priority) -> str | None:
        """Why ``customer_id`` does not get this step ("global holdout 5%", ...), or None."""
        if priority is Priority.TRANSACTIONAL or not self.any:
            return None
        if held_out(self.key, GLOBAL_UNIT, customer_id, self.global_share):
            return f"global holdout {percent(self.global_share)}"
        share = self.journeys.get(journey, 0)
        if held_out(self.key, journey_unit(journey), customer_id, share):
            return f"journey holdout {percent(share)}"
        share = self.steps.get((journey, step), 0)
        if held_out(self.key, step_unit(journey, step), customer_id, share):
            return f"step holdout {percent(share)}"
        return None
