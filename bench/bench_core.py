"""Decisions per second in the journey core, alone and with the state codec around it.

    .venv/bin/python -m bench.bench_core [customers]

Prints a table and writes bench/results/core.json. A figure, not a test.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from bench.compat import load_journeys
from bench.population import population
from pipeline.intake import Admitted, SourceRecord
from pipeline.journeys.engine import JourneyEngine
from pipeline.journeys.model import CustomerState, Wake
from pipeline.names import RECORD_OF_TOPIC
from pipeline.worker.convert import to_event
from pipeline.worker.statecodec import decode_state, encode_state

RESULTS = Path(__file__).with_name("results")


def main(customers: int) -> dict[str, float]:
    engine = JourneyEngine(load_journeys())
    events = []
    for role, record in population(customers):
        source = SourceRecord(role.value, 0, 0, record["customer_id"].encode(), b"")
        events.append(
            to_event(Admitted(role, RECORD_OF_TOPIC[role], record, source), record["occurred_at"])
        )

    # The core alone: state kept as objects.
    states: dict[str, CustomerState | None] = {}
    started = time.perf_counter()
    for event in events:
        decision = engine.decide(states.get(event.customer_id), event, event.occurred_at)
        states[event.customer_id] = decision.state
    core = len(events) / (time.perf_counter() - started)

    # Wakes: fire everything that came due (education, need-help, feedback, cross-sell ...).
    wakes = [
        (wake, customer)
        for customer, state in states.items()
        if state is not None and (wake := engine.next_wakeup(state)) is not None
    ]
    started = time.perf_counter()
    for wake, customer in wakes:
        decision = engine.decide(states[customer], Wake(customer, wake), wake)
        states[customer] = decision.state
    wake_rate = len(wakes) / (time.perf_counter() - started) if wakes else 0.0

    # As the worker does it: state decoded from bytes and encoded back for every event.
    stored: dict[str, bytes] = {}
    started = time.perf_counter()
    for event in events:
        raw = stored.get(event.customer_id)
        state = decode_state(raw) if raw is not None else None
        decision = engine.decide(state, event, event.occurred_at)
        stored[event.customer_id] = encode_state(decision.state)
    with_codec = len(events) / (time.perf_counter() - started)
    state_bytes = sum(len(v) for v in stored.values()) / len(stored)

    result = {
        "customers": customers,
        "events": len(events),
        "core_decisions_per_s": round(core),
        "core_wakes_per_s": round(wake_rate),
        "decisions_with_state_codec_per_s": round(with_codec),
        "state_bytes_per_customer": round(state_bytes),
        "cores": os.cpu_count() or 0,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "core.json").write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():
        print(f"{key:36} {value:>12,}")
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
