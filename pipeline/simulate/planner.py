"""Planning a customer's life at arrival: every event as a beat, and when customers arrive."""

from __future__ import annotations

import random
from array import array
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pipeline.journeys.model import Priority
from pipeline.names import TopicRole
from pipeline.simulate.beats import (
    _FIRST_PARCEL,
    _FULL,
    _GOODWILL,
    _KIND,
    _KINDS,
    MAX_ORDERS,
    _Life,
    _pack,
)
from pipeline.simulate.plan import (
    DAY,
    HOUR,
    MILLISECOND,
    MINUTE,
    SECOND,
    Plan,
    _local,
    _working_day,
    _zone,
)
from pipeline.simulate.render import _customer_id, _gets
from pipeline.simulate.world import (
    _DELAYED,
    _FEATURES_OF,
    _HIGH_COMMENTS,
    _LOW_COMMENTS,
    _MID_COMMENTS,
    _NO_COMMENT,
    _PAYMENT_FAILED,
    _PLATFORMS,
    _QUIET_HOURS,
    _RECIPES_FEATURE,
    _REGION_WEIGHTS,
    _REGIONS,
    _RETURNED,
    _SETUP_FEATURE,
    _SUPPORT_COMMENTS,
    _TRACKING_FEATURE,
    _WAREHOUSE,
    _Basket,
    _basket,
)

# What the messages do (see "What the messages really do" above).
CROSS_SELL_PULL = 0.6  # times loyalty: the chance of another order within a week of the offer
SUPPORT_WITHOUT_HELP = 0.4  # setup not done: the chance of a support request the week after
SUPPORT_WITH_HELP = 0.08
SETUP_WITHOUT_HELP = 0.15  # a stalled setup: the chance it is finished within days of the offer
SETUP_WITH_HELP = 0.65
CROSS_SELL_DELAY = timedelta(days=30)  # the default journeys' cross_sell and need_help delays
NEED_HELP_DELAY = timedelta(days=3)
# The feedback request goes 14 days after delivery, at the end of its 1-day digest window.
FEEDBACK_REQUEST = timedelta(days=15)


# -- planning a life -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Picture:
    """A customer's whole preferences at one moment."""

    email: bool = True
    sms: bool = False
    whatsapp: bool = False
    push: bool = False
    in_app: bool = True
    marketing: bool = False
    quiet: int = 0  # index into _QUIET_HOURS

    def arg(self) -> int:
        bits = (self.email, self.sms, self.whatsapp, self.push, self.in_app, self.marketing)
        return sum(1 << n for n, bit in enumerate(bits) if bit) | self.quiet << 6


class _Delivered:
    """What the rest of a life needs to know about a delivered order."""

    __slots__ = ("at", "basket", "order", "returned_at")

    def __init__(self, order: int, at: datetime, basket: _Basket) -> None:
        self.order = order
        self.at = at
        self.basket = basket
        self.returned_at: datetime | None = None


class _Planner:
    """Plans one customer's life: decisions drawn from the customer's own random stream."""

    def __init__(self, plan: Plan, index: int, origin: datetime, arrival_ms: int, end_ms: int):
        self.seed = plan.seed
        self.index = index
        self.origin = origin
        self.end_ms = end_ms
        self.end = origin + end_ms * MILLISECOND
        self.arrival = origin + arrival_ms * MILLISECOND
        self.rng = random.Random(f"aftercare-simulate:{plan.seed}:{index}")
        # Each planted effect draws from a stream of its own: whether a customer is held out of
        # one changes nothing else in their life.
        self.help_stream = random.Random(f"aftercare-simulate-help:{plan.seed}:{index}")
        self.offer_stream = random.Random(f"aftercare-simulate-offer:{plan.seed}:{index}")
        self.loyalty = self.offer_stream.betavariate(2, 5)
        customer = _customer_id(plan.seed, index)
        self.helped = _gets(plan.holdouts, customer, "need_help", "offer", Priority.ENGAGEMENT)
        self.offered = _gets(plan.holdouts, customer, "cross_sell", "offer", Priority.MARKETING)
        self.orders = 0
        self.beats: list[int] = []
        self.region = _REGIONS[0]
        self.zone = _zone(_WAREHOUSE)
        self.platform: str | None = None
        self.has_phone = False
        self.installed: datetime | None = None
        self.churned: datetime | None = None
        self.last_app: datetime | None = None
        self.delivered: list[_Delivered] = []
        self.awaited: list[tuple[datetime, datetime]] = []  # (placed, delivered): to track

    def emit(self, at: datetime, kind: str, order: int = 0, parcel: int = 0, arg: int = 0) -> None:
        offset = (at - self.origin) // MILLISECOND
        if _KINDS[_KIND[kind]][0] is TopicRole.APP_USAGE:
            self.last_app = at if self.last_app is None else max(self.last_app, at)
        if offset < self.end_ms:
            self.beats.append(_pack(offset, kind, order, parcel, arg))

    def plan(self) -> _Life:
        rng = self.rng
        self.region = region = rng.choices(_REGIONS, weights=_REGION_WEIGHTS)[0]
        self.zone = _zone(region.timezone)
        salt = rng.getrandbits(48)
        self.has_phone = has_phone = rng.random() < 0.85
        self.platform = rng.choices(_PLATFORMS, weights=(36, 32, 24, 8))[0]
        has_account = self.platform is not None or rng.random() < 0.8

        arrived = self.awake(self.arrival)
        picture = _Picture(
            email=rng.random() < 0.99,
            sms=has_phone and rng.random() < 0.45,
            whatsapp=has_phone and rng.random() < region.whatsapp,
            marketing=rng.random() < 0.45,
            quiet=rng.randrange(1, len(_QUIET_HOURS)) if rng.random() < 0.3 else 0,
        )
        marketing = picture.marketing  # at the start: what the cross-sell offer needs
        pictures: list[tuple[datetime, dict[str, Any] | None]] = []  # None: a change of mind
        first_order = arrived
        if has_account:
            first_order = arrived + rng.uniform(3, 40) * MINUTE

        gap = 4.5  # mean days between app sessions
        if self.platform is not None:
            soon = rng.random() < 0.4
            wait = rng.uniform(5, 60) * MINUTE if soon else rng.uniform(1, 72) * HOUR
            self.installed = installed = self.awake(first_order + wait)
            self.emit(installed, "APP_OPENED")
            if self.platform != "WEB":
                registered = installed + rng.uniform(5, 60) * SECOND
                self.emit(registered, "PUSH_TOKEN_REGISTERED")
                if rng.random() < 0.78:  # allowed notifications
                    pictures.append((registered + rng.uniform(5, 90) * SECOND, {"push": True}))
            style = rng.random()
            if style < 0.45:
                gap = 1.3  # regular: every day or two
            elif style < 0.78:
                gap = 4.5  # occasional
            else:
                gap = 1.5  # until they drift away
                self.churned = installed + rng.uniform(1, 9) * DAY

        placed = first_order
        for order in range(1, MAX_ORDERS + 1):
            self.orders = order
            self.order(order, placed)
            if rng.random() >= (0.3 if order == 1 else 0.25):
                break
            placed = self.awake(placed + rng.uniform(5, 25) * DAY)
            if placed >= self.end:
                break

        if self.installed is not None:
            until = min(self.churned or self.end, self.end)
            self.sessions(self.installed, until, gap)
            if self.churned is not None and self.last_app is not None and rng.random() < 0.4:
                # Back after a quiet spell: some right after the re-engagement push, some later.
                back = self.awake(self.last_app + 14 * DAY + rng.uniform(0.2, 6) * DAY)
                if back < self.end:
                    self.churned = None
                    self.emit(back, "APP_OPENED")
                    self.sessions(back, self.end, 4.5)

        if has_account:
            for _ in range(rng.choices((0, 1, 2), weights=(70, 24, 6))[0]):
                changed = self.awake(first_order + rng.uniform(2, 30) * DAY)
                pictures.append((changed, None))
            pictures.sort(key=lambda p: p[0])
            self.emit(arrived, "PREFERENCES", arg=picture.arg())
            for at, change in pictures:
                picture = self.change(picture) if change is None else replace(picture, **change)
                self.emit(at, "PREFERENCES", arg=picture.arg())

        if has_account and marketing:
            self.cross_sell()

        profile = _REGIONS.index(region) | _PLATFORMS.index(self.platform) << 5
        profile |= has_phone << 7 | salt << 8
        return _Life(self.index, profile, array("Q", sorted(self.beats)))

    def change(self, picture: _Picture) -> _Picture:
        """A change of mind about ``picture``: one field, to a value it does not have yet."""
        rng = self.rng
        options: list[tuple[int, dict[str, Any]]] = [
            (18, {"quiet": rng.choice([q for q in range(len(_QUIET_HOURS)) if q != picture.quiet])})
        ]
        if picture.sms:
            options.append((30, {"sms": False}))  # replied STOP
        if picture.marketing:
            options.append((20, {"marketing": False}))
        else:
            options.append((12, {"marketing": True}))
        if self.has_phone and not picture.whatsapp:
            options.append((15, {"whatsapp": True}))
        if picture.email:
            options.append((4, {"email": False}))
        weights = [weight for weight, _ in options]
        return replace(picture, **rng.choices(options, weights=weights)[0][1])

    # -- orders --------------------------------------------------------------------------------

    def order(self, order: int, placed: datetime) -> None:
        rng = self.rng
        basket = _basket(self.seed, self.index, order, self.region)
        self.emit(placed, "ORDER_PLACED", order)
        if rng.random() < 0.08:
            failed = placed + rng.uniform(20, 240) * SECOND
            self.emit(failed, "PAYMENT_FAILED", order, arg=rng.randrange(len(_PAYMENT_FAILED)))
            fate = rng.random()
            if fate < 0.3:  # never paid: the shop gives up after three days
                self.emit(placed + rng.uniform(72, 74) * HOUR, "ORDER_CANCELLED", order, arg=1)
                return
            if fate < 0.45:  # tried again, failed again
                failed = failed + rng.uniform(2, 8) * HOUR
                self.emit(failed, "PAYMENT_FAILED", order, arg=rng.randrange(len(_PAYMENT_FAILED)))
            paid = failed + rng.uniform(15, 20 * 60) * MINUTE
        else:
            paid = placed + rng.uniform(5, 90) * SECOND
        self.emit(paid, "PAYMENT_SUCCEEDED", order)

        if rng.random() < 0.035:  # the customer cancels before it ships
            cancelled = paid + rng.uniform(0.5, 10) * HOUR
            self.emit(cancelled, "ORDER_CANCELLED", order, arg=0)
            refunded = cancelled + rng.uniform(1, 48) * HOUR
            self.emit(refunded, "ORDER_REFUNDED", order, arg=0 | _FULL << 3)
            return

        if rng.random() < 0.07:  # back-ordered: not shipped within 48 hours
            shipped = placed + rng.uniform(50, 130) * HOUR
        else:
            shipped = paid + rng.uniform(2, 20) * HOUR
        shipped = self.warehouse(max(shipped, paid + HOUR))
        parcels = 2 if len(basket.lines) >= 2 and rng.random() < 0.15 else 1
        first, troubled = self.parcel(order, 1, paid, shipped)
        self.awaited.append((placed, first))
        if parcels == 2:
            second_shipped = self.warehouse(shipped + rng.uniform(1, 3) * DAY)
            _, late = self.parcel(order, 2, paid, second_shipped)
            troubled = troubled or late
        self.after_delivery(order, basket, first, troubled, parcels)

    def parcel(
        self, order: int, parcel: int, paid: datetime, shipped: datetime
    ) -> tuple[datetime, bool]:
        """Plan one parcel from label to door: when it was delivered, and whether it was late."""
        rng, zone, region = self.rng, self.zone, self.region
        opened = _local(shipped.astimezone(_zone(_WAREHOUSE)).date(), 8 * 60, _zone(_WAREHOUSE))
        label = max(shipped - rng.uniform(0.3, 4) * HOUR, paid + 10 * MINUTE, opened)
        self.emit(label, "LABEL_CREATED", order, parcel)
        today = shipped.astimezone(zone).date()
        day = _working_day(today, rng.randint(*region.transit_days))
        self.emit(shipped, "SHIPPED", order, parcel, arg=(day - today).days)
        troubled = False
        if rng.random() < (0.16 if region.international else 0.08):
            morning = _local(day, 6 * 60, zone)
            delayed = shipped + (morning - shipped) * rng.uniform(0.3, 0.9)
            day = _working_day(day, rng.randint(1, 3))
            reasons = len(_DELAYED) if region.international else len(_DELAYED) - 1
            days = (day - delayed.astimezone(zone).date()).days
            self.emit(delayed, "DELAYED", order, parcel, arg=days | rng.randrange(reasons) << 5)
            troubled = True
        out = _local(day, 7 * 60 + rng.uniform(0, 150), zone)
        self.emit(out, "OUT_FOR_DELIVERY", order, parcel)
        if rng.random() < 0.06:
            troubled = True
            failed = out + rng.uniform(2, 8) * HOUR
            if rng.random() < 0.3:  # left at a parcel shop: collected a day or two later
                self.emit(failed, "DELIVERY_FAILED", order, parcel, arg=2)
                return self.awake(failed + rng.uniform(18, 50) * HOUR), troubled
            self.emit(failed, "DELIVERY_FAILED", order, parcel, arg=rng.randrange(2))
            day = _working_day(failed.astimezone(zone).date(), 1)
            out = _local(day, 7 * 60 + rng.uniform(0, 150), zone)
            self.emit(out, "OUT_FOR_DELIVERY", order, parcel)
        delivered = out + rng.uniform(1, 8) * HOUR
        self.emit(delivered, "DELIVERED", order, parcel)
        return delivered, troubled

    def after_delivery(
        self, order: int, basket: _Basket, delivered: datetime, troubled: bool, parcels: int
    ) -> None:
        rng = self.rng
        done = _Delivered(order, delivered, basket)
        self.delivered.append(done)
        hardware = basket.lines[0].product.hardware
        if rng.random() < (0.07 if hardware else 0.02):
            returned = self.awake(delivered + rng.uniform(3, 12) * DAY)
            self.emit(returned, "RETURNED", order, 1, arg=rng.randrange(len(_RETURNED)))
            amount = _FIRST_PARCEL if parcels == 2 else _FULL
            refunded = returned + rng.uniform(2, 6) * DAY
            self.emit(refunded, "ORDER_REFUNDED", order, 1, arg=1 | amount << 3)
            done.returned_at = returned
        elif rng.random() < 0.025:
            refunded = self.awake(delivered + rng.uniform(2, 9) * DAY)
            self.emit(
                refunded, "ORDER_REFUNDED", order, arg=(2 if troubled else 3) | _GOODWILL << 3
            )

        setup = basket.setup_line()
        if setup is not None and self.platform is not None:
            fate = rng.random()
            finished = False
            if fate < 0.85:
                started = delivered + rng.uniform(0.3, 30 if fate < 0.6 else 40) * HOUR
                if self.app_at(started):
                    self.emit(started, "FEATURE_USED", order, arg=_SETUP_FEATURE)
                    if fate < 0.6:
                        completed = started + rng.uniform(5, 40) * MINUTE
                        self.emit(completed, "SETUP_COMPLETED", order)
                        finished = True
                    else:  # stalled: finished after the offer of help, more often with it
                        chance = SETUP_WITH_HELP if self.helped else SETUP_WITHOUT_HELP
                        completed = self.awake(delivered + rng.uniform(3.2, 7) * DAY)
                        if rng.random() < chance and self.app_at(completed):
                            self.emit(completed, "SETUP_COMPLETED", order)
            if not finished:  # stalled, or never started
                self.stalled(order, delivered, basket)

        if done.returned_at is None:
            if self.platform is not None and rng.random() < 0.12:
                rated: datetime | None = self.awake(delivered + rng.uniform(2, 10) * DAY)
            elif rng.random() < 0.35:  # answering the feedback request
                rated = self.awake(delivered + FEEDBACK_REQUEST + rng.uniform(10, 60 * 60) * MINUTE)
            else:
                rated = None
            if rated is not None:
                self.feedback(order, rated, troubled)
        if self.platform is not None and rng.random() < 0.05:
            asked = self.awake(delivered + rng.uniform(4, 9 * 24) * HOUR)
            if self.app_at(asked):
                about = {line.product.category for line in basket.lines}
                comments = [c for c, category in _SUPPORT_COMMENTS if category in about]
                self.emit(asked, "SUPPORT_REQUESTED", order, arg=rng.choice(comments or [14]))

    def stalled(self, order: int, delivered: datetime, basket: _Basket) -> None:
        """Setup not done when help is offered: the customer may ask support the week after."""
        rng = self.help_stream
        chance = SUPPORT_WITH_HELP if self.helped else SUPPORT_WITHOUT_HELP
        asks = rng.random() < chance
        asked = self.awake(delivered + NEED_HELP_DELAY + rng.uniform(0.2, 6.5) * DAY, rng)
        about = {line.product.category for line in basket.lines}
        comment = rng.choice([c for c, category in _SUPPORT_COMMENTS if category in about] or [14])
        if asks and self.app_at(asked):
            self.emit(asked, "SUPPORT_REQUESTED", order, arg=comment)

    def cross_sell(self) -> None:
        """The offer a month after each delivery: some customers order again within a week."""
        if not self.offered:
            return
        for done in list(self.delivered):
            if done.returned_at is not None or self.orders >= MAX_ORDERS:
                continue
            rng = self.offer_stream
            if rng.random() >= CROSS_SELL_PULL * self.loyalty:
                continue
            placed = self.awake(done.at + CROSS_SELL_DELAY + rng.uniform(0.5, 6) * DAY, rng)
            if placed >= self.end:
                continue
            self.orders += 1
            # Planned with the offer's stream too: the rest of the life stays as it was.
            self.rng, main = rng, self.rng
            try:
                self.order(self.orders, placed)
            finally:
                self.rng = main

    def feedback(self, order: int, at: datetime, troubled: bool) -> None:
        rng = self.rng
        weights = (25, 20, 20, 20, 15) if troubled else (8, 10, 12, 25, 45)
        rating = rng.choices((1, 2, 3, 4, 5), weights=weights)[0]
        comments = (
            _LOW_COMMENTS if rating <= 2 else _MID_COMMENTS if rating == 3 else _HIGH_COMMENTS
        )
        comment = rng.choice(comments) if rng.random() < 0.6 else _NO_COMMENT
        web = not self.app_at(at)  # from the link in the email, in the browser
        self.emit(at, "FEEDBACK_SUBMITTED", order, arg=rating | comment << 3 | web << 9)

    # -- the app -------------------------------------------------------------------------------

    def app_at(self, at: datetime) -> bool:
        """Whether the customer uses the app at ``at``: installed, and not drifted away."""
        if self.installed is None or at < self.installed:
            return False
        return self.churned is None or at < self.churned

    def sessions(self, since: datetime, until: datetime, mean_gap_days: float) -> None:
        rng = self.rng
        at = since
        while True:
            at = self.awake(at + rng.expovariate(1 / mean_gap_days) * DAY)
            if at >= until:
                return
            self.emit(at, "APP_OPENED")
            if rng.random() < 0.4:
                self.use_feature(at + rng.uniform(1, 12) * MINUTE)

    def use_feature(self, at: datetime) -> None:
        owned = [d for d in self.delivered if d.at < at and d.returned_at is None]
        if owned:
            done = self.rng.choice(owned)
            line = self.rng.choice(done.basket.lines)
            features = _FEATURES_OF.get(line.product.category, (_RECIPES_FEATURE,))
            self.emit(at, "FEATURE_USED", done.order, arg=self.rng.choice(features))
        elif any(placed < at < arrived for placed, arrived in self.awaited):
            self.emit(at, "FEATURE_USED", arg=_TRACKING_FEATURE)
        else:
            self.emit(at, "FEATURE_USED", arg=_RECIPES_FEATURE)

    # -- time ----------------------------------------------------------------------------------

    def awake(self, at: datetime, rng: random.Random | None = None) -> datetime:
        """``at``, or the next morning if the customer is asleep then (before 7, after 23)."""
        local = at.astimezone(self.zone)
        if 7 <= local.hour < 23:
            return at
        day = local.date() if local.hour < 7 else local.date() + DAY
        return _local(day, 7 * 60 + (rng or self.rng).uniform(0, 150), self.zone)

    def warehouse(self, at: datetime) -> datetime:
        """``at``, or when the warehouse next works (Monday to Saturday, 8 to 20, Berlin)."""
        zone = _zone(_WAREHOUSE)
        local = at.astimezone(zone)
        if local.weekday() < 6 and 8 <= local.hour < 20:
            return at
        day = local.date() if local.hour < 8 else local.date() + DAY
        while day.weekday() == 6:
            day += DAY
        return _local(day, 8 * 60 + self.rng.uniform(0, 120), zone)
