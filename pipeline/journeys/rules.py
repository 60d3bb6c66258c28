"""The journeys as data: what the journeys file says, once read and checked.

A journey is started by a trigger event (or, for re-engagement, by the absence of app activity),
and has one or more steps, each due a delay after the trigger's event time, on channels in order of
preference, valid for a while, under conditions. Policies shared by all journeys (quiet hours,
frequency caps, exits) sit beside them in the same file. See ``default-journeys.yaml`` for the
defaults and the reference of every key; :mod:`pipeline.journeysfile` reads the file (the core
reads no files).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from pipeline.journeys.holdout import Holdouts
from pipeline.journeys.kinds import EventKind
from pipeline.journeys.model import Channel, Priority, QuietHours

# The design's default: transactional email is never held (a receipt, a tracking link); what only
# keeps in touch waits for the morning on every channel that reaches the customer but in-app.
DEFAULT_QUIET_CHANNELS: Mapping[Priority, frozenset[Channel]] = {
    Priority.TRANSACTIONAL: frozenset({Channel.SMS, Channel.WHATSAPP, Channel.PUSH}),
    Priority.ENGAGEMENT: frozenset({Channel.EMAIL, Channel.SMS, Channel.WHATSAPP, Channel.PUSH}),
    Priority.MARKETING: frozenset({Channel.EMAIL, Channel.SMS, Channel.WHATSAPP, Channel.PUSH}),
}
# In-app rings nobody; the webhook reaches the support team, not the customer.
NEVER_HELD = frozenset({Channel.IN_APP, Channel.WEBHOOK})

SCOPES = ("order", "shipment", "event", "customer")  # what "once" means for a journey
EXIT_REACH = ("all", "engagement")  # which pending touchpoints an exit ends


@dataclass(frozen=True)
class Condition:
    name: str
    value: int | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}={self.value}"


@dataclass(frozen=True)
class StepRule:
    name: str
    delay: timedelta
    channels: tuple[Channel, ...]
    template: str
    conditions: tuple[Condition, ...]
    validity: timedelta
    variables: tuple[tuple[str, str], ...] = ()
    digest: Digest | None = None
    line: int | None = field(default=None, compare=False)  # where the step starts in its file


@dataclass(frozen=True)
class Digest:
    """Touchpoints of one step that come due within ``window`` of the first go as one message."""

    window: timedelta
    key: str = "customer"  # what one digest is about: "customer" or "order"


@dataclass(frozen=True)
class JourneyRule:
    name: str
    priority: Priority
    trigger: EventKind
    scope: str
    urgent: bool
    steps: tuple[StepRule, ...]
    conditions: tuple[Condition, ...] = ()
    exit_on: tuple[EventKind, ...] = ()
    quiet_for: timedelta | None = None


@dataclass(frozen=True)
class FrequencyCap:
    max: int
    within: timedelta


@dataclass(frozen=True)
class JourneyBook:
    """The loaded journeys file."""

    journeys: tuple[JourneyRule, ...]
    exits: Mapping[EventKind, str]  # event kind -> "all" | "engagement"
    quiet_hours: QuietHours
    frequency_caps: tuple[FrequencyCap, ...]
    locale: str
    timezone: str
    source: str
    # The channels that wait out quiet hours, per priority (in-app and webhook never ring).
    quiet_channels: Mapping[Priority, frozenset[Channel]] = field(
        default_factory=lambda: dict(DEFAULT_QUIET_CHANNELS)
    )
    holdouts: Holdouts = field(default_factory=Holdouts)

    def triggered_by(self, kind: str) -> tuple[JourneyRule, ...]:
        return self._by_trigger.get(kind, ())

    @cached_property
    def _by_trigger(self) -> dict[str, tuple[JourneyRule, ...]]:
        # Asked for every event the worker decides: built once, in the file's order.
        found: dict[str, list[JourneyRule]] = {}
        for journey in self.journeys:
            found.setdefault(journey.trigger, []).append(journey)
        return {kind: tuple(journeys) for kind, journeys in found.items()}

    def step(self, journey: str, step: str) -> StepRule | None:
        """The rule of one step of a journey (None when either is gone from the file)."""
        return self._steps.get((journey, step))

    @cached_property
    def _steps(self) -> dict[tuple[str, str], StepRule]:
        # Asked for every touchpoint that falls due: built once.
        return {(j.name, s.name): s for j in self.journeys for s in j.steps}

    def journey(self, name: str) -> JourneyRule | None:
        for journey in self.journeys:
            if journey.name == name:
                return journey
        return None
