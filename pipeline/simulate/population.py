"""A seeded, reproducible population of customers and the input events of their lives.

:func:`simulate` is pure: no Kafka, no I/O, no clock. The same :class:`Plan` gives the same events
in the same order, with the same ids, in any process.

Who the customers are
    Shoppers of a coffee-equipment shop (espresso machines, grinders, milk frothers, beans, cups,
    accessories, cleaning supplies) in Germany, Austria, Switzerland, the UK, Ireland, the
    Netherlands, North America, Brazil, India, Singapore, Australia and New Zealand: each with
    their own IANA time zone (several change to or from summer time within a March run), a
    locale (German or English content), a currency, an email address, usually a mobile number.
    Most have an account with preferences (channel consents, marketing opt-in, sometimes their
    own quiet hours); guests have none. About two thirds use the companion app (iOS, Android or
    the web app); those on a phone register a push token and most allow notifications.

What they do
    Customers arrive over the first part of the run (the first 10 days of 45: everything but its
    last 35 days, so that a 14-day feedback request and a 30-day cross-sell fall inside it), at
    waking hours in their own time zone, sign up and order. Some order again a week or three
    later. A payment fails now and then (mostly recovered, sometimes twice, otherwise the order
    is cancelled); a few cancel and are refunded. The warehouse in Berlin ships in working hours,
    some orders only after 2 days (back-orders); a few ship in two parcels. Parcels travel for
    days depending on the destination, may be delayed (customs, weather) with a new ETA, go out
    for delivery in the morning, fail at the door once in a while (then a new attempt, or the
    parcel shop), and arrive. Some are returned and refunded, a few get a goodwill refund. App
    users set up their machines soon after delivery, or start and stall, use features, ask for
    support, and rate what they bought: a few on their own, more after the 14-day request, low
    after a troubled delivery more often. Regular users open the app every day or two,
    occasional ones every few days; some drift away for good or come back after a while.
    Customers change their minds: some reply STOP to SMS, withdraw (or give) their marketing
    consent, take up WhatsApp or move their quiet hours. Every preferences record is the whole
    picture, as the compacted topic wants.

What the messages really do
    Some journeys change what customers do, and some do not, so that the uplift report can be
    checked against a known truth (the numbers are :mod:`~pipeline.simulate.planner`'s). Each
    customer has a hidden loyalty (Beta(2, 5), mean 0.29). The cross-sell offer a month after
    delivery makes a customer with marketing consent order again within a week with a chance of
    ``CROSS_SELL_PULL`` times their loyalty. The offer of help when setup stalls halves the chance
    that the customer asks support in the week after it (``SUPPORT_WITHOUT_HELP`` against
    ``SUPPORT_WITH_HELP``) and doubles the chance they finish setup. Product education and
    re-engagement change nothing that the report measures.
    Customers in a journey's holdout group (``Plan.holdouts``, the journeys file's) never get the
    message, so none of this happens to them; the others react as if they got it (the simulator
    knows the holdout groups, not the frequency caps or the channels, which only dilutes the
    effects). Being held out of one journey changes nothing else in a customer's life.

Where it lives
    This module streams the population (:func:`simulate`, :func:`count_events`);
    :mod:`~pipeline.simulate.plan` holds the plan, the events and the run's time;
    :mod:`~pipeline.simulate.world` the regions, the catalogue and the words;
    :mod:`~pipeline.simulate.planner` plans a life as beats (:mod:`~pipeline.simulate.beats`);
    :mod:`~pipeline.simulate.render` builds each beat's record when it is due.

How it stays small
    Customers are generated one at a time, in the order of their arrival, and their events are
    merged with a heap. A customer's life is planned at arrival as an array of 64-bit "beats"
    (time, kind, order, parcel and a small argument packed into one integer, time in the high
    bits); each record is built only when its beat is due. A customer between two events costs
    a few hundred bytes, so a million customers stream through modest memory, and the first
    event comes out at once.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from pipeline.simulate.beats import _TIME_SHIFT, _Life
from pipeline.simulate.plan import Plan, SimEvent, _arrival_span_ms, _arrivals, _end_ms, _origin
from pipeline.simulate.planner import _Planner
from pipeline.simulate.render import _render

__all__ = ["Plan", "SimEvent", "count_events", "simulate"]


def simulate(plan: Plan) -> Iterator[SimEvent]:
    """Every event of ``plan``'s population, in non-decreasing ``at``, all in [start, end)."""
    origin = _origin(plan)
    end_ms = _end_ms(plan, origin)
    heap: list[tuple[int, int, _Life]] = []
    arrivals = _arrivals(plan, end_ms)
    arrival = next(arrivals, None)
    while True:
        # A customer's events all come at or after their arrival, and arrivals come in order: once
        # the earliest pending event is before the next arrival, nobody unplanned can precede it.
        while arrival is not None and (not heap or arrival[1] <= heap[0][0]):
            index, offset = arrival
            life = _Planner(plan, index, origin, offset, end_ms).plan()
            if life.beats:
                heapq.heappush(heap, (life.beats[0] >> _TIME_SHIFT, index, life))
            arrival = next(arrivals, None)
        if not heap:
            return
        _, index, life = heap[0]
        event = _render(plan, origin, life)
        life.pos += 1
        if life.pos < len(life.beats):
            heapq.heapreplace(heap, (life.beats[life.pos] >> _TIME_SHIFT, index, life))
        else:
            heapq.heappop(heap)
        yield event


def count_events(plan: Plan, *, sample: int = 2000) -> int:
    """How many events :func:`simulate` yields for ``plan``: exact up to ``sample`` customers
    (planning only, no records built: a fraction of simulating), estimated above that from
    ``sample`` customers spread over the population (arriving where they would, on average)."""
    origin = _origin(plan)
    end_ms = _end_ms(plan, origin)
    if plan.customers <= sample:
        return sum(
            len(_Planner(plan, index, origin, offset, end_ms).plan().beats)
            for index, offset in _arrivals(plan, end_ms)
        )
    span = _arrival_span_ms(plan, end_ms)
    total = 0
    for k in range(sample):
        index = (2 * k + 1) * plan.customers // (2 * sample)
        offset = int(span * (index + 1) / (plan.customers + 1))  # the mean of its order statistic
        total += len(_Planner(plan, index, origin, offset, end_ms).plan().beats)
    return round(total * plan.customers / sample)
