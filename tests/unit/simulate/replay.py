"""The worker, minus Kafka: each simulated event admitted and decided the moment it happens, every
customer woken whenever the core asks to be (as the scheduler does), and what the worker would
write to ``dispatch`` and ``deliveries`` kept as the records it would write."""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pipeline.analytics.uplift import Behaviour
from pipeline.codec import SchemaSet
from pipeline.intake import Admitted, SourceRecord, admit
from pipeline.journeys.engine import JourneyEngine
from pipeline.journeys.model import CancelTouchpoint, CustomerState, Event, SendTouchpoint, Wake
from pipeline.journeysfile import load_journeys
from pipeline.names import RECORD_OF_TOPIC
from pipeline.simulate.population import Plan, simulate
from pipeline.worker.convert import dispatch_record, outcome_record, to_event

SCHEMAS = SchemaSet.load()
MAX_FUTURE = timedelta(days=1)


@dataclass
class Replay:
    engine: JourneyEngine = field(default_factory=lambda: JourneyEngine(load_journeys()))
    states: dict[str, CustomerState] = field(default_factory=dict)
    wake_at: dict[str, datetime | None] = field(default_factory=dict)
    wakes: list[tuple[datetime, str]] = field(default_factory=list)
    dispatched: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)
    dispatch_records: list[dict[str, Any]] = field(default_factory=list)
    outcome_records: list[dict[str, Any]] = field(default_factory=list)
    behaviour: Behaviour = field(default_factory=Behaviour)

    def run(self, plan: Plan) -> None:
        for offset, event in enumerate(simulate(plan)):
            self.wake_until(event.at)
            value = SCHEMAS.encode(RECORD_OF_TOPIC[event.role], event.record)
            key = event.customer_id.encode("utf-8")
            source = SourceRecord(event.role.value, 0, offset, key, value)
            verdict = admit(SCHEMAS, event.role, source, now=event.at, max_future=MAX_FUTURE)
            if not isinstance(verdict, Admitted):
                self.refused.append(f"{event.record['event_id']}: {verdict}")
                continue
            self.behaviour.add(verdict.record)
            self.decide(event.customer_id, to_event(verdict, event.at), event.at)
        self.wake_until(plan.end - timedelta(milliseconds=1))

    def wake_until(self, moment: datetime) -> None:
        while self.wakes and self.wakes[0][0] <= moment:
            due, customer = heapq.heappop(self.wakes)
            if self.wake_at.get(customer) == due:  # else superseded by a later decision
                self.decide(customer, Wake(customer, due), due)

    def decide(self, customer: str, event: Event, now: datetime) -> None:
        decision = self.engine.decide(self.states.get(customer), event, now)
        self.states[customer] = decision.state
        for command in decision.commands:
            if isinstance(command, SendTouchpoint):
                self.dispatched[command.touchpoint.journey] += 1
                self.dispatch_records.append(dispatch_record(command, now))
            elif isinstance(command, CancelTouchpoint):
                self.outcome_records.append(outcome_record(command, now))
        due = self.engine.next_wakeup(decision.state)
        self.wake_at[customer] = due
        if due is not None:
            heapq.heappush(self.wakes, (due, customer))
