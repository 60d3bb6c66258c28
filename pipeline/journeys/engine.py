"""``decide(state, event, now) -> Decision``: the whole of Aftercare's judgement, without I/O.

One call handles one event of one customer, in five moves:

1. **De-duplicate**: an ``event_id`` seen before changes nothing.
2. **Apply** the event to what we know: contact, preferences, orders and their shipments, app
   activity. An event that is older than what it would replace is *stale* (a SHIPPED after the
   DELIVERED of the same parcel, a DELAYED after the delivery, preferences older than the ones
   applied) and changes nothing.
3. **Exit**: a cancellation, refund or return ends the order's pending touchpoints at once, as the
   journeys file's ``exits`` and each journey's ``exit_on`` say. Each becomes a SUPPRESSED outcome.
4. **Start** the journeys the event triggers (once per scope), scheduling every step at the
   trigger's event time plus the step's delay, and arm the re-engagement watch.
5. **Fire** whatever is due now: expiry, conditions, marketing opt-in, consent and addresses, quiet
   hours (defer), frequency caps and holdout groups decide between sending it and recording why
   not.

Every touchpoint that is scheduled ends in exactly one ``SendTouchpoint`` or ``CancelTouchpoint``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from pipeline.journeys import policies
from pipeline.journeys.conditions import CONDITIONS
from pipeline.journeys.kinds import (
    APP_ACTIVITY,
    APP_QUIET,
    CLOSING_KINDS,
    SHIPMENT_STAGES,
    EventKind,
    news_stage,
)
from pipeline.journeys.model import (
    AppUsageEvent,
    CancelTouchpoint,
    Command,
    Contact,
    CustomerState,
    Decision,
    Event,
    OrderState,
    Outcome,
    Pending,
    Preferences,
    PreferencesErased,
    PreferencesEvent,
    Priority,
    PurchaseEvent,
    Recipient,
    SendTouchpoint,
    ShipmentEvent,
    ShipmentState,
    Touchpoint,
    TouchpointContext,
    Wake,
    evolve,
)
from pipeline.journeys.rules import (
    Condition,
    Digest,
    JourneyBook,
    JourneyRule,
)

SEEN_EVENT_IDS = 256  # per customer; redeliveries come within minutes, not hundreds of events
# How long, in event time after it falls due, a touchpoint that no channel may carry waits for
# preferences or contact details that happened earlier but arrive later (read beyond the worker's
# idle bound, or published late upstream) before it is recorded SUPPRESSED. Only that record is
# delayed: a touchpoint that becomes sendable goes at once, within its validity.
LATE_PREFERENCES_GRACE = timedelta(minutes=15)
ORDER_RETENTION = timedelta(days=120)  # an order with nothing pending is forgotten after this


class _Trigger:
    """What started a journey: the event, and the order and parcel it is about."""

    __slots__ = ("event_id", "kind", "occurred_at", "order_id", "rating", "reason", "shipment_id")

    def __init__(
        self,
        kind: EventKind,
        event_id: str,
        occurred_at: datetime,
        order_id: str | None,
        shipment_id: str | None = None,
        rating: int | None = None,
        reason: str | None = None,
    ) -> None:
        self.kind = kind
        self.event_id = event_id
        self.occurred_at = occurred_at
        self.order_id = order_id
        self.shipment_id = shipment_id
        self.rating = rating
        self.reason = reason


class JourneyEngine:
    def __init__(self, book: JourneyBook) -> None:
        self.book = book
        spans = [j.quiet_for for j in book.journeys if j.trigger == APP_QUIET and j.quiet_for]
        self._quiet_for = min(spans) if spans else None  # the app-quiet watch's span, if any

    # -- the entry point ---------------------------------------------------------------------

    def decide(self, state: CustomerState | None, event: Event, now: datetime) -> Decision:
        state = state if state is not None else CustomerState(event.customer_id)
        if event.event_id:
            if event.event_id in state.seen_event_ids:
                return Decision(state, used=False, note="duplicate")
            seen = (*state.seen_event_ids, event.event_id)[-SEEN_EVENT_IDS:]
            state = evolve(state, seen_event_ids=seen)

        applied, trigger = self._apply(state, event)
        commands: list[Command] = []
        scheduled: list[Touchpoint] = []  # started now, due later: kept in state until then
        note = ""
        if applied is None:
            note = "stale"  # it changes nothing, but time may still have passed: fire below
        else:
            state = applied
        if trigger is not None:
            state = self._exit(state, trigger, commands)
            state = self._start(state, trigger, now, scheduled)
        state = self._watch_app_quiet(state, now, scheduled)
        state = self._fire(state, now, commands)
        state = self._forget(state, now)
        return Decision(
            state, tuple(commands), used=applied is not None, note=note, scheduled=tuple(scheduled)
        )

    def next_wakeup(self, state: CustomerState) -> datetime | None:
        """When ``decide`` should next be called with a :class:`Wake` for this customer."""
        times = [pending.not_before for pending in state.pending]
        watch = self._app_quiet_at(state)
        if watch is not None:
            times.append(watch)
        return min(times, default=None)

    # -- 2. apply ------------------------------------------------------------------------------

    def _apply(
        self, state: CustomerState, event: Event
    ) -> tuple[CustomerState | None, _Trigger | None]:
        """The new state and what it triggers; (None, None) when the event is stale."""
        if isinstance(event, PurchaseEvent):
            return self._apply_purchase(state, event)
        if isinstance(event, ShipmentEvent):
            return self._apply_shipment(state, event)
        if isinstance(event, AppUsageEvent):
            return self._apply_app_usage(state, event)
        if isinstance(event, PreferencesEvent):
            return self._apply_preferences(state, event), None
        if isinstance(event, PreferencesErased):
            # No event time to compare with: on the compacted topic whatever follows the
            # tombstone for this customer is newer, so it must apply, whatever its occurred_at.
            return evolve(state, preferences=Preferences()), None
        if isinstance(event, Wake):
            return state, None
        raise TypeError(f"not an event: {event!r}")

    def _apply_purchase(
        self, state: CustomerState, event: PurchaseEvent
    ) -> tuple[CustomerState | None, _Trigger | None]:
        order = state.order(event.order_id) or OrderState(event.order_id)
        if event.contact is not None:
            state = _with_contact(
                state,
                event.occurred_at,
                email=event.contact.email,
                phone=event.contact.phone,
                locale=event.contact.locale,
                timezone=event.contact.timezone,
            )
        if event.kind == EventKind.ORDER_PLACED:
            order = evolve(
                order,
                placed_at=order.placed_at or event.occurred_at,
                items=event.items or order.items,
                total_minor=event.total_minor,
                currency=event.currency,
            )
        elif event.kind in CLOSING_KINDS:
            order = evolve(order, closed_by=order.closed_by or event.kind)
            if event.kind == EventKind.ORDER_REFUNDED:
                order = evolve(order, total_minor=event.total_minor or order.total_minor)
        order = evolve(order, last_event_at=_later(order.last_event_at, event.occurred_at))
        trigger = _Trigger(
            event.kind,
            event.event_id,
            event.occurred_at,
            event.order_id,
            reason=event.reason,
        )
        return _with_order(state, order), trigger

    def _apply_shipment(
        self, state: CustomerState, event: ShipmentEvent
    ) -> tuple[CustomerState | None, _Trigger | None]:
        order = state.order(event.order_id) or OrderState(event.order_id)
        parcel = order.shipment(event.shipment_id)
        stage = SHIPMENT_STAGES.get(event.kind)
        if stage is not None:
            if parcel is not None and parcel.stage >= stage:
                return None, None  # e.g. SHIPPED after DELIVERED: old news
            stage_at = event.occurred_at
        else:  # parcel news that moves no stage (DELAYED ...): news only up to its stage
            if order.max_stage > news_stage(event.kind) or (
                parcel is not None and event.occurred_at < parcel.stage_at
            ):
                return None, None
            stage, stage_at = (parcel.stage, parcel.stage_at) if parcel else (0, event.occurred_at)
        parcel = ShipmentState(
            shipment_id=event.shipment_id,
            stage=stage,
            stage_at=stage_at,
            carrier=event.carrier or (parcel.carrier if parcel else None),
            tracking_url=event.tracking_url or (parcel.tracking_url if parcel else None),
            eta=event.eta or (parcel.eta if parcel else None),
            reason=event.reason,
        )
        shipments = tuple(s for s in order.shipments if s.shipment_id != event.shipment_id)
        order = evolve(
            order,
            shipments=(*shipments, parcel),
            last_event_at=_later(order.last_event_at, event.occurred_at),
        )
        if event.kind == EventKind.DELIVERED and order.delivered_at is None:
            order = evolve(order, delivered_at=event.occurred_at)
        if event.kind == EventKind.RETURNED and order.returned_at is None:
            order = evolve(order, returned_at=event.occurred_at)
        trigger = _Trigger(
            event.kind,
            event.event_id,
            event.occurred_at,
            event.order_id,
            shipment_id=event.shipment_id,
            reason=event.reason,
        )
        return _with_order(state, order), trigger

    def _apply_app_usage(
        self, state: CustomerState, event: AppUsageEvent
    ) -> tuple[CustomerState | None, _Trigger | None]:
        if event.kind in APP_ACTIVITY:
            state = evolve(
                state, last_app_activity=_later(state.last_app_activity, event.occurred_at)
            )
        if event.kind == EventKind.PUSH_TOKEN_REGISTERED and event.push_token:
            state = evolve(state, contact=evolve(state.contact, push_token=event.push_token))
        # An order known only from the app (its purchase not seen yet) is still an order: "once
        # per order" must hold for it too.
        order = (
            (state.order(event.order_id) or OrderState(event.order_id)) if event.order_id else None
        )
        if order is not None:
            order = evolve(order, last_event_at=_later(order.last_event_at, event.occurred_at))
        if event.kind == EventKind.SETUP_COMPLETED:
            if order is not None:
                order = evolve(
                    order, setup_completed_at=_later(order.setup_completed_at, event.occurred_at)
                )
            else:  # setup of "the product": counts for every delivered order
                state = evolve(
                    state,
                    orders=tuple(
                        evolve(
                            o, setup_completed_at=_later(o.setup_completed_at, event.occurred_at)
                        )
                        if o.delivered_at is not None
                        else o
                        for o in state.orders
                    ),
                )
        if event.kind == EventKind.FEEDBACK_SUBMITTED and order is not None:
            order = evolve(order, rating=event.rating)
        if order is not None:
            state = _with_order(state, order)
        trigger = _Trigger(
            event.kind, event.event_id, event.occurred_at, event.order_id, rating=event.rating
        )
        return state, trigger

    def _apply_preferences(
        self, state: CustomerState, event: PreferencesEvent
    ) -> CustomerState | None:
        known = state.preferences.updated_at
        if known is not None and event.occurred_at < known:
            return None  # an older picture than the one we have
        state = evolve(
            state,
            preferences=Preferences(
                consent=event.consent,
                marketing_opt_in=event.marketing_opt_in,
                quiet_hours=event.quiet_hours,
                updated_at=event.occurred_at,
                unsubscribed=event.unsubscribed,
            ),
        )
        return _with_contact(
            state,
            event.occurred_at,
            email=event.email,
            phone=event.phone,
            locale=event.locale,
            timezone=event.timezone,
        )

    # -- 3. exit -------------------------------------------------------------------------------

    def _exit(
        self, state: CustomerState, trigger: _Trigger, commands: list[Command]
    ) -> CustomerState:
        reach = self.book.exits.get(trigger.kind)
        stage = SHIPMENT_STAGES.get(trigger.kind, 0)
        keep: list[Pending] = []
        for pending in state.pending:
            touchpoint = pending.touchpoint
            journey = self.book.journey(touchpoint.journey)
            reason = ""
            if touchpoint.order_id != trigger.order_id:
                pass
            elif (
                reach == "all"
                or (reach == "engagement" and touchpoint.priority is not Priority.TRANSACTIONAL)
                or (journey is not None and trigger.kind in journey.exit_on)
            ):
                reason = f"exit:{trigger.kind}"
            elif (
                journey is not None
                and touchpoint.context.shipment_id == trigger.shipment_id
                and news_stage(journey.trigger) < stage
            ):
                # A parcel alert still waiting (quiet hours) is old news once the parcel moved on.
                reason = f"superseded:{trigger.kind}"
            if reason:
                commands.append(CancelTouchpoint(touchpoint, Outcome.SUPPRESSED, reason))
            else:
                keep.append(pending)
        return evolve(state, pending=tuple(keep))

    # -- 4. start ------------------------------------------------------------------------------

    def _start(
        self, state: CustomerState, trigger: _Trigger, now: datetime, scheduled: list[Touchpoint]
    ) -> CustomerState:
        order = state.order(trigger.order_id) if trigger.order_id else None
        for journey in self.book.triggered_by(trigger.kind):
            if order is not None and self._exited(order, journey, trigger.kind):
                continue
            scope = _scope_key(journey, trigger)
            if (
                order is not None
                and journey.scope in ("order", "shipment")
                and scope in order.started
            ):
                continue  # once per order (or parcel)
            if _failed(journey.conditions, state, order, trigger.occurred_at, trigger.rating):
                continue
            context = self._context(order, trigger)
            state = self._schedule(state, journey, scope, trigger, context, now, scheduled)
            if order is not None and journey.scope in ("order", "shipment"):
                order = evolve(order, started=(*order.started, scope))
                state = _with_order(state, order)
        return state

    def _exited(self, order: OrderState, journey: JourneyRule, kind: str) -> bool:
        """Whether an exit that already happened to ``order`` keeps ``journey`` from starting."""
        if kind in self.book.exits:
            return False  # an exit's own journeys (cancellation, refund) always start
        happened = [order.closed_by] if order.closed_by else []
        if order.returned_at is not None:
            happened.append(EventKind.RETURNED)
        for exit_kind in happened:
            reach = self.book.exits.get(exit_kind)
            if reach == "all" or (
                reach == "engagement" and journey.priority is not Priority.TRANSACTIONAL
            ):
                return True
        return False

    def _schedule(
        self,
        state: CustomerState,
        journey: JourneyRule,
        scope: str,
        trigger: _Trigger,
        context: TouchpointContext,
        now: datetime,
        scheduled: list[Touchpoint],
    ) -> CustomerState:
        added: list[Pending] = []
        known = {p.touchpoint.touchpoint_id for p in state.pending}
        for step in journey.steps:
            due = trigger.occurred_at + step.delay
            touchpoint = Touchpoint(
                touchpoint_id=touchpoint_id(state.customer_id, scope, journey.name, step.name, due),
                customer_id=state.customer_id,
                journey=journey.name,
                step=step.name,
                order_id=trigger.order_id,
                priority=journey.priority,
                urgent=journey.urgent,
                channels=step.channels,
                template=step.template,
                context=evolve(context, variables=step.variables) if step.variables else context,
                trigger_event_id=trigger.event_id,
                trigger_occurred_at=trigger.occurred_at,
                due_at=due,
                expires_at=due + step.validity,
            )
            if touchpoint.touchpoint_id in known:
                continue
            if due > now:
                scheduled.append(touchpoint)
            added.append(Pending(touchpoint, not_before=due))
        return evolve(state, pending=(*state.pending, *added))

    def _context(self, order: OrderState | None, trigger: _Trigger) -> TouchpointContext:
        parcel = order.shipment(trigger.shipment_id) if order and trigger.shipment_id else None
        items = order.items if order else ()
        return TouchpointContext(
            items=items,
            total_minor=order.total_minor if order else None,
            currency=order.currency if order else None,
            shipment_id=trigger.shipment_id,
            carrier=parcel.carrier if parcel else None,
            tracking_url=parcel.tracking_url if parcel else None,
            eta=parcel.eta if parcel else None,
            reason=trigger.reason,
            categories=tuple(sorted({item.category for item in items})),
            rating=trigger.rating,
        )

    def _app_quiet_at(self, state: CustomerState) -> datetime | None:
        """When the app-quiet watch goes off, if it is armed."""
        if state.last_app_activity is None or state.reengaged_for == state.last_app_activity:
            return None
        if self._quiet_for is None:
            return None
        return state.last_app_activity + self._quiet_for

    def _watch_app_quiet(
        self, state: CustomerState, now: datetime, scheduled: list[Touchpoint]
    ) -> CustomerState:
        """Start re-engagement once the app has been quiet long enough; once per quiet spell."""
        quiet_since = self._app_quiet_at(state)
        if quiet_since is None or now < quiet_since:
            return state
        last = state.last_app_activity
        for journey in self.book.triggered_by(APP_QUIET):  # at most one (the reader checks)
            trigger = _Trigger(APP_QUIET, f"app-quiet:{_millis(quiet_since)}", quiet_since, None)
            if _failed(journey.conditions, state, None, quiet_since, None) is None:
                scope = _scope_key(journey, trigger)
                state = self._schedule(
                    state, journey, scope, trigger, TouchpointContext(), now, scheduled
                )
        return evolve(state, reengaged_for=last)

    # -- 5. fire -------------------------------------------------------------------------------

    def _fire(self, state: CustomerState, now: datetime, commands: list[Command]) -> CustomerState:
        keep: list[Pending] = []
        digests: dict[tuple[object, ...], list[Pending]] = {}
        for pending in sorted(state.pending, key=lambda p: (p.not_before, p.touchpoint_id)):
            if pending.not_before > now and not pending.awaiting_consent:
                keep.append(pending)
                continue
            digest = self._digest(pending.touchpoint)
            if digest is not None and pending.digest_until is None:
                # Just due: held for the digest's window, or for one already open; a window that
                # ends now (a late event, a worker that was away) takes it along at once.
                held = [p for members in digests.values() for p in members]
                until = self._window((*state.pending, *keep, *held), pending, digest)
                pending = evolve(
                    pending, not_before=until, digest_until=until, awaiting_consent=False
                )
                if until > now:
                    keep.append(pending)
                    continue
            if digest is not None:
                key = (*_digest_group(pending, digest), pending.digest_until)
                digests.setdefault(key, []).append(pending)
                continue
            state, command, deferred = self._fire_one(state, pending, now)
            if deferred is not None:
                keep.append(deferred)
            if command is not None:
                commands.append(command)
        for members in digests.values():
            state = self._fire_digest(state, members, now, commands, keep)
        return evolve(state, pending=tuple(keep))

    def _digest(self, touchpoint: Touchpoint) -> Digest | None:
        step = self.book.step(touchpoint.journey, touchpoint.step)
        return step.digest if step is not None else None

    def _window(self, pending: tuple[Pending, ...], new: Pending, digest: Digest) -> datetime:
        """When ``new`` goes: with an open window of its digest that covers its due time, or at
        the end of a window of its own."""
        group = _digest_group(new, digest)
        due = new.touchpoint.due_at
        # Only a window that ends within this one's own: joining it never holds it longer.
        open_until = [
            p.digest_until
            for p in pending
            if p.digest_until is not None
            and due <= p.digest_until <= due + digest.window
            and _digest_group(p, digest) == group
        ]
        return min(open_until, default=due + digest.window)

    def _fire_digest(
        self,
        state: CustomerState,
        members: list[Pending],
        now: datetime,
        commands: list[Command],
        keep: list[Pending],
    ) -> CustomerState:
        """Every member decided on the same state (one message, one cap); those that would go
        go as one: the first carries the rest, which end SUPPRESSED ``digest``."""
        members.sort(key=lambda p: (p.touchpoint.due_at, p.touchpoint_id))
        results = [self._fire_one(state, member, now) for member in members]
        sends = [r for r in results if isinstance(r[1], SendTouchpoint)]
        for _, command, deferred in results:
            if deferred is not None:
                keep.append(deferred)
            if command is not None and not isinstance(command, SendTouchpoint):
                commands.append(command)
        if not sends:
            return results[0][0]
        carrier_state, carrier, _ = sends[0]
        assert isinstance(carrier, SendTouchpoint)
        others = [send for _, send, _ in sends[1:] if isinstance(send, SendTouchpoint)]
        commands.append(evolve(carrier, members=tuple(s.touchpoint for s in others)))
        detail = f"sent with {carrier.touchpoint.touchpoint_id}"
        commands += [
            CancelTouchpoint(s.touchpoint, Outcome.SUPPRESSED, "digest", detail) for s in others
        ]
        return carrier_state

    def _fire_one(
        self, state: CustomerState, pending: Pending, now: datetime
    ) -> tuple[CustomerState, Command | None, Pending | None]:
        touchpoint = pending.touchpoint

        def cancel(outcome: Outcome, reason: str, detail: str = "") -> CancelTouchpoint:
            return CancelTouchpoint(touchpoint, outcome, reason, detail)

        if policies.expired(touchpoint, now):
            detail = f"valid until {touchpoint.expires_at.isoformat()}, fired {now.isoformat()}"
            return state, cancel(Outcome.EXPIRED, "expired", detail), None
        journey = self.book.journey(touchpoint.journey)
        step = self.book.step(touchpoint.journey, touchpoint.step)
        if journey is None or step is None:
            return state, cancel(Outcome.SUPPRESSED, "journey_disabled"), None
        order = state.order(touchpoint.order_id) if touchpoint.order_id else None
        failed = _failed(
            (*journey.conditions, *step.conditions),
            state,
            order,
            touchpoint.trigger_occurred_at,
            touchpoint.context.rating,
        )
        if failed is not None:
            return state, cancel(Outcome.SUPPRESSED, f"condition:{failed.name}"), None
        if touchpoint.priority is Priority.MARKETING and not state.preferences.marketing_opt_in:
            return state, cancel(Outcome.SUPPRESSED, "no_marketing_opt_in"), None
        channels, why_not = policies.usable_channels(state, touchpoint)
        if not channels:
            # Preferences (or the contact) that happened before it may still be on their way:
            # wait a little, in event time, before calling it suppressed; nothing is sent late.
            grace_end = min(touchpoint.due_at + LATE_PREFERENCES_GRACE, touchpoint.expires_at)
            if now < grace_end:
                return state, None, evolve(pending, not_before=grace_end, awaiting_consent=True)
            return state, cancel(Outcome.SUPPRESSED, why_not), None

        timezone = policies.zone(state.contact.timezone or self.book.timezone)
        quiet = state.preferences.quiet_hours or self.book.quiet_hours
        held = self.book.quiet_channels[touchpoint.priority]
        if (
            not touchpoint.urgent
            and policies.held_in_quiet_hours(channels, held)
            and policies.in_quiet_hours(quiet, now, timezone)
        ):
            wake = policies.quiet_hours_end(quiet, now, timezone)
            if wake <= touchpoint.expires_at:
                return state, None, evolve(pending, not_before=wake, awaiting_consent=False)
            # It would expire while waiting: reach the customer where it does not wait, if we can.
            silent = tuple(c for c in channels if c not in held)
            if not silent:
                detail = f"quiet hours end {wake.isoformat()}, after its validity"
                return state, cancel(Outcome.EXPIRED, "quiet_hours", detail), None
            channels = silent

        if touchpoint.priority is not Priority.TRANSACTIONAL:
            caps = self.book.frequency_caps
            sends = policies.recent_sends(state.engagement_sends, caps, now)
            if policies.capped(sends, caps, now):
                return (
                    evolve(state, engagement_sends=sends),
                    cancel(Outcome.SUPPRESSED, "frequency_cap"),
                    None,
                )
            state = evolve(state, engagement_sends=(*sends, now))
            # Last, so that the held-out are those who would have got it: compared with the
            # ones who did, they measure what it changes. It counts against the caps as if it
            # had gone, so that what comes next is capped alike in both groups.
            holdout = self.book.holdouts.reason(
                state.customer_id, touchpoint.journey, touchpoint.step, touchpoint.priority
            )
            if holdout is not None:
                return state, cancel(Outcome.SUPPRESSED, "holdout", holdout), None
        recipient = Recipient(
            email=state.contact.email,
            phone=state.contact.phone,
            push_token=state.contact.push_token,
            locale=state.contact.locale or self.book.locale,
            timezone=state.contact.timezone or self.book.timezone,
        )
        return state, SendTouchpoint(touchpoint, channels, recipient), None

    # -- housekeeping ----------------------------------------------------------------------------

    def _forget(self, state: CustomerState, now: datetime) -> CustomerState:
        """Drop orders long finished, so a customer's state does not grow for ever."""
        busy = {p.touchpoint.order_id for p in state.pending}
        orders = tuple(
            o
            for o in state.orders
            if o.order_id in busy
            or o.last_event_at is None
            or now - o.last_event_at < ORDER_RETENTION
        )
        if len(orders) == len(state.orders):
            return state
        return evolve(state, orders=orders)


# -- helpers -----------------------------------------------------------------------------------


def touchpoint_id(customer_id: str, scope: str, journey: str, step: str, due: datetime) -> str:
    """Deterministic: one touchpoint has one id, on any worker, after any restart."""
    key = f"{customer_id}\x1f{scope}\x1f{journey}\x1f{step}\x1f{_millis(due)}"
    return "tp_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _digest_group(pending: Pending, digest: Digest) -> tuple[str, str, str | None]:
    """Which digests a touchpoint may join: its step's, and its order's if they are per order."""
    touchpoint = pending.touchpoint
    order = touchpoint.order_id if digest.key == "order" else None
    return (touchpoint.journey, touchpoint.step, order)


def _scope_key(journey: JourneyRule, trigger: _Trigger) -> str:
    order = trigger.order_id or "-"
    if journey.scope == "shipment":
        return f"{journey.name}/{order}/{trigger.shipment_id}"
    if journey.scope == "event":
        return f"{journey.name}/{order}/{trigger.event_id}"
    if journey.scope == "customer":
        return f"{journey.name}/{trigger.event_id}"
    return f"{journey.name}/{order}"


def _failed(
    conditions: tuple[Condition, ...],
    state: CustomerState,
    order: OrderState | None,
    trigger_at: datetime,
    rating: int | None,
) -> Condition | None:
    """The first condition that does not hold, or None."""
    for condition in conditions:
        if not CONDITIONS[condition.name].check(state, order, trigger_at, rating, condition.value):
            return condition
    return None


def _with_order(state: CustomerState, order: OrderState) -> CustomerState:
    """``order`` replaces the one of its id and goes last (most events are of the last one)."""
    orders = state.orders
    if orders and orders[-1].order_id == order.order_id:
        return evolve(state, orders=(*orders[:-1], order))
    others = tuple(o for o in orders if o.order_id != order.order_id)
    return evolve(state, orders=(*others, order))


def _with_contact(
    state: CustomerState,
    at: datetime,
    *,
    email: str | None,
    phone: str | None,
    locale: str | None,
    timezone: str | None,
) -> CustomerState:
    known = state.contact
    if known.updated_at is not None and at < known.updated_at:
        return state  # older than what we know
    contact = Contact(
        email=email or known.email,
        phone=phone or known.phone,
        push_token=known.push_token,
        locale=locale or known.locale,
        timezone=timezone or known.timezone,
        updated_at=at,
    )
    return evolve(state, contact=contact)


def _later(known: datetime | None, candidate: datetime) -> datetime:
    return candidate if known is None or candidate > known else known


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
