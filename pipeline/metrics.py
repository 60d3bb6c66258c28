"""Every Prometheus metric Aftercare exposes, in one place: names, labels, buckets.

Base units only (seconds, totals), fixed names, and never a customer, order or touchpoint id as a
label: labels are bounded sets (topics, event types, journeys, channels, statuses, reasons,
providers). Each process (worker, senders, preferences service) serves its registry at
``/metrics``.

Times are measured on the injected clock and reported in *real* seconds: with an accelerated clock
(demos, tests) a simulated interval is divided by the clock's factor, so dashboards and alerts mean
the same thing in a demo as in production.

End-to-end latency is measured from when a touchpoint became due (its trigger's event time for
immediate touchpoints; trigger time + delay for scheduled ones) to when the provider accepted it:
how long a customer waited beyond what the journey intended.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pipeline.journeys.model import Channel, Priority

# Tens of milliseconds for a transactional send to minutes for retries through an outage.
LATENCY_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Metric names, as dashboards and alert rules spell them (with the _bucket/_total suffixes
# Prometheus adds where it does).
END_TO_END = "aftercare_end_to_end_latency_seconds"
DECISION = "aftercare_decision_seconds"
TIMER_LATENESS = "aftercare_timer_lateness_seconds"
PENDING_TIMERS = "aftercare_pending_timers"
EVENTS = "aftercare_events_total"
DISPATCHES = "aftercare_dispatches_total"
DELIVERIES = "aftercare_deliveries_total"
ATTEMPTS = "aftercare_delivery_attempts_total"
RETRIES = "aftercare_delivery_retries_total"
PROVIDER_REQUEST = "aftercare_provider_request_seconds"
BREAKER_STATE = "aftercare_circuit_breaker_state"
CONSUMER_LAG = "aftercare_consumer_lag"
COMMITTED_OFFSET = "aftercare_committed_offset"
GAPS = "aftercare_offset_gaps_total"
IN_FLIGHT = "aftercare_touchpoints_in_flight"

BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.decision = Histogram(
            DECISION,
            "Time to decide one event (journey core, state decode and encode), seconds.",
            registry=r,
            buckets=FAST_BUCKETS,
        )
        self.timer_lateness = Histogram(
            TIMER_LATENESS,
            "How late a due touchpoint was fired: fired minus due (real seconds).",
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.pending_timers = Gauge(
            PENDING_TIMERS,
            "Customers with something scheduled on this worker's partitions.",
            registry=r,
        )
        self.events = Counter(
            EVENTS.removesuffix("_total"),
            "Input records by topic, event type and outcome (used, duplicate, stale, "
            "dead_lettered).",
            ["topic", "type", "outcome"],
            registry=r,
        )
        self.dispatches = Counter(
            DISPATCHES.removesuffix("_total"),
            "Touchpoints dispatched, by journey and first channel.",
            ["journey", "channel"],
            registry=r,
        )
        self.deliveries = Counter(
            DELIVERIES.removesuffix("_total"),
            "Touchpoint outcomes, by channel, status and reason.",
            ["channel", "status", "reason"],
            registry=r,
        )
        self.lag = Gauge(
            CONSUMER_LAG,
            "Records not yet consumed, by topic and partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.committed = committed_offset_gauge(r)
        self.gaps = Counter(
            GAPS.removesuffix("_total"),
            "Gaps in the input offsets handed to the worker, by how the broker explained them: "
            "none (compaction, transaction markers) or rewound (records lost on the way, read "
            "again).",
            ["topic", "verdict"],
            registry=r,
        )

    def events_by_outcome(self) -> dict[str, int]:
        """Input records handled so far by outcome (used, duplicate, stale, dead_lettered, ...),
        all topics and types together: what the worker says of itself on its ready page."""
        totals: dict[str, int] = {}
        for family in self.events.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    outcome = sample.labels.get("outcome", "unknown")
                    totals[outcome] = totals.get(outcome, 0) + int(sample.value)
        return dict(sorted(totals.items()))


def committed_offset_gauge(registry: CollectorRegistry) -> Gauge:
    return Gauge(
        COMMITTED_OFFSET,
        "The consumer group's offset this process last committed, by topic and partition.",
        ["topic", "partition"],
        registry=registry,
    )


class SenderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.end_to_end = Histogram(
            END_TO_END,
            "From due (the trigger's event time, for immediate touchpoints) to accepted by the "
            "provider, real seconds, by channel and priority.",
            ["channel", "priority"],
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.deliveries = Counter(
            DELIVERIES.removesuffix("_total"),
            "Touchpoint outcomes, by channel, status and reason.",
            ["channel", "status", "reason"],
            registry=r,
        )
        self.attempts = Counter(
            ATTEMPTS.removesuffix("_total"),
            "Provider calls, by channel.",
            ["channel"],
            registry=r,
        )
        self.retries = Counter(
            RETRIES.removesuffix("_total"),
            "Provider calls that were retries, by channel.",
            ["channel"],
            registry=r,
        )
        self.provider_request = Histogram(
            PROVIDER_REQUEST,
            "Time of one provider call, seconds, by provider and outcome (delivered, "
            "retryable, permanent).",
            ["provider", "outcome"],
            registry=r,
            buckets=REQUEST_BUCKETS,
        )
        self.breaker = Gauge(
            BREAKER_STATE,
            "Circuit breaker per provider: 0 closed, 1 half-open, 2 open.",
            ["provider"],
            registry=r,
        )
        self.lag = Gauge(
            CONSUMER_LAG,
            "Records not yet consumed, by topic and partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.committed = committed_offset_gauge(r)
        self.in_flight = Gauge(
            IN_FLIGHT, "Touchpoints being delivered (including waiting retries).", registry=r
        )
        # Series that exist from the start at zero: a rate sees the very first deliveries, and
        # an alert on a channel that never delivered has a series to look at.
        for channel in Channel:
            for priority in Priority:
                self.end_to_end.labels(channel.value, priority.value)
            self.attempts.labels(channel.value)
            self.retries.labels(channel.value)


class PreferencesMetrics:
    """The preferences service: what customers changed, and what was refused."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.changes = Counter(
            "aftercare_preferences_changes",
            "Preferences records published, by what asked for them and its scope.",
            ["via", "scope"],
            registry=self.registry,
        )
        self.refused = Counter(
            "aftercare_preferences_refused",
            "Requests refused: a bad token (403), a bad body (400).",
            ["status"],
            registry=self.registry,
        )
