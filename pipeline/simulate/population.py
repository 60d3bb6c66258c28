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
    checked against a known truth. Each customer has a hidden loyalty (Beta(2, 5), mean 0.29). The
    cross-sell offer a month after delivery makes a customer with marketing consent order again
    within a week with a chance of :data:`CROSS_SELL_PULL` times their loyalty. The offer of help
    when setup stalls halves the chance that the customer asks support in the week after it
    (:data:`SUPPORT_WITHOUT_HELP` against :data:`SUPPORT_WITH_HELP`) and doubles the chance they
    finish setup. Product education and re-engagement change nothing that the report measures.
    Customers in a journey's holdout group (``Plan.holdouts``, the journeys file's) never get the
    message, so none of this happens to them; the others react as if they got it (the simulator
    knows the holdout groups, not the frequency caps or the channels, which only dilutes the
    effects). Being held out of one journey changes nothing else in a customer's life.

How it stays small
    Customers are generated one at a time, in the order of their arrival, and their events are
    merged with a heap. A customer's life is planned at arrival as an array of 64-bit "beats"
    (time, kind, order, parcel and a small argument packed into one integer, time in the high
    bits); each record is built only when its beat is due. A customer between two events costs
    a few hundred bytes, so a million customers stream through modest memory, and the first
    event comes out at once.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.journeys.holdout import Holdouts
from pipeline.journeys.model import Priority
from pipeline.names import TopicRole

__all__ = ["Plan", "SimEvent", "count_events", "simulate"]

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MILLISECOND = timedelta(milliseconds=1)

MAX_DAYS = 3650.0  # the beats' 40 bits of milliseconds hold 34 years; ten are plenty
TAIL_DAYS = 35.0  # a customer's month after delivery, kept inside the run when it is long enough

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


@dataclass(frozen=True)
class Plan:
    """What to simulate: this many customers, for this many days from ``start``, from ``seed``."""

    customers: int = 400
    days: float = 45.0
    seed: int = 42
    start: datetime = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    # Who does not get which journey: pass the journeys file's, so the world reacts only to the
    # messages that are sent. The default holds nobody out.
    holdouts: Holdouts = field(default_factory=Holdouts)

    def __post_init__(self) -> None:
        if self.customers < 0:
            raise ValueError(f"a plan needs 0 or more customers, not {self.customers}")
        if not 0 < self.days <= MAX_DAYS:
            raise ValueError(
                f"a plan spans more than 0 and at most {MAX_DAYS:g} days, not {self.days}"
            )
        if self.start.tzinfo is None:
            raise ValueError("a plan's start must be timezone-aware (add Z or +00:00)")

    @property
    def end(self) -> datetime:
        """The first instant after the run: every event is before it."""
        return self.start + timedelta(days=self.days)


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One input event: the Avro ``record`` for the topic of ``role``, which happens ``at``."""

    at: datetime  # the record's occurred_at (aware, UTC, whole milliseconds)
    role: TopicRole  # PURCHASES, SHIPMENTS, APP_USAGE or PREFERENCES
    record: dict[str, Any]  # ready for SchemaSet.encode(RECORD_OF_TOPIC[role], record)

    @property
    def customer_id(self) -> str:
        return str(self.record["customer_id"])


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


# -- the world: regions, catalogue, words ------------------------------------------------------


@dataclass(frozen=True)
class _Region:
    timezone: str
    locale: str
    dial: str  # country calling code
    mobile: tuple[str, ...]  # mobile prefixes after the calling code, valid whatever follows
    digits: int  # subscriber digits after the prefix
    currency: str
    carriers: tuple[str, ...]
    transit_days: tuple[int, int]  # from the warehouse in Berlin
    international: bool  # customs on the way
    whatsapp: float  # share of customers with a phone who allow WhatsApp
    weight: int

    @property
    def german(self) -> bool:
        return self.locale.startswith("de")


_REGIONS = (
    _Region("Europe/Berlin", "de-DE", "+49", ("151", "160", "170", "176"), 8, "EUR",
            ("DHL", "Hermes", "DPD"), (1, 2), False, 0.35, 28),
    _Region("Europe/Vienna", "de-AT", "+43", ("664", "676", "699"), 7, "EUR",
            ("Österreichische Post", "DPD"), (2, 3), False, 0.35, 6),
    _Region("Europe/Zurich", "de-CH", "+41", ("76", "78", "79"), 7, "CHF",
            ("Swiss Post",), (2, 4), True, 0.4, 4),
    _Region("Europe/London", "en-GB", "+44", ("7400", "7800", "7900"), 6, "GBP",
            ("Royal Mail", "DPD"), (3, 5), True, 0.3, 12),
    _Region("Europe/Dublin", "en-IE", "+353", ("83", "85", "87"), 7, "EUR",
            ("An Post",), (3, 5), False, 0.3, 3),
    _Region("Europe/Amsterdam", "nl-NL", "+31", ("61", "62", "64", "65"), 7, "EUR",
            ("PostNL", "DHL"), (2, 3), False, 0.45, 5),
    _Region("America/New_York", "en-US", "+1", ("2125", "6463", "9174"), 6, "USD",
            ("UPS", "FedEx"), (4, 7), True, 0.1, 9),
    _Region("America/Chicago", "en-US", "+1", ("3124", "7735"), 6, "USD",
            ("UPS", "FedEx"), (4, 7), True, 0.1, 3),
    _Region("America/Los_Angeles", "en-US", "+1", ("2136", "3102", "4155"), 6, "USD",
            ("UPS", "FedEx"), (5, 8), True, 0.1, 6),
    _Region("America/Toronto", "en-CA", "+1", ("4163", "6477"), 6, "CAD",
            ("Canada Post", "UPS"), (5, 8), True, 0.15, 3),
    _Region("America/Sao_Paulo", "pt-BR", "+55", ("1191", "2198"), 7, "USD",
            ("DHL Express",), (6, 10), True, 0.8, 2),
    _Region("Asia/Kolkata", "en-IN", "+91", ("98", "99", "70"), 8, "USD",
            ("DHL Express",), (5, 9), True, 0.8, 3),
    _Region("Asia/Singapore", "en-SG", "+65", ("81", "87", "91", "96"), 6, "USD",
            ("DHL Express",), (5, 8), True, 0.6, 2),
    _Region("Australia/Sydney", "en-AU", "+61", ("40", "41", "42", "43"), 7, "AUD",
            ("Australia Post", "DHL Express"), (6, 10), True, 0.2, 4),
    _Region("Pacific/Auckland", "en-NZ", "+64", ("21", "22", "27"), 7, "NZD",
            ("NZ Post",), (7, 10), True, 0.2, 1),
)  # fmt: skip
_REGION_WEIGHTS = tuple(region.weight for region in _REGIONS)
_PER_EUR = {"EUR": 1.0, "GBP": 0.86, "USD": 1.08, "CHF": 0.95, "CAD": 1.47, "AUD": 1.65, "NZD": 1.8}
_WAREHOUSE = "Europe/Berlin"


@dataclass(frozen=True)
class _Product:
    sku: str
    name: str
    name_de: str
    category: str
    price_eur: int  # minor units, tax included
    setup: bool = False  # set up in the app after delivery
    hardware: bool = False


_MACHINES = (
    _Product("CM-450", "Barista 450 espresso machine", "Barista 450 Espressomaschine",
             "coffee-machines", 29900, True, True),
    _Product("CM-900", "Barista 900 espresso machine", "Barista 900 Espressomaschine",
             "coffee-machines", 49900, True, True),
    _Product("CM-AUTO", "Automatica bean-to-cup machine", "Automatica Kaffeevollautomat",
             "coffee-machines", 79900, True, True),
    _Product("CM-DRIP12", "Morning 12 filter coffee maker", "Morning 12 Filterkaffeemaschine",
             "coffee-machines", 8900, True, True),
    _Product("GR-PRO64", "Precision 64 burr grinder", "Precision 64 Kaffeemühle",
             "grinders", 24900, True, True),
    _Product("GR-HAND", "Travel hand grinder", "Handmühle für unterwegs",
             "grinders", 5900, False, True),
    _Product("MF-ONE", "Milk frother One", "Milchaufschäumer One",
             "milk-frothers", 7900, True, True),
)  # fmt: skip
_MACHINE_WEIGHTS = (25, 20, 8, 15, 12, 8, 12)
_SUPPLIES = (
    _Product("BN-HOUSE-1K", "House blend beans 1 kg", "Hausmischung Bohnen 1 kg", "coffee", 1850),
    _Product("BN-FORTE-1K", "Espresso Forte beans 1 kg", "Espresso Forte Bohnen 1 kg", "coffee",
             2190),
    _Product("BN-ETH-250", "Ethiopia Yirgacheffe 250 g", "Äthiopien Yirgacheffe 250 g", "coffee",
             1290),
    _Product("BN-DECAF-500", "Swiss Water decaf 500 g", "Entkoffeiniert (Swiss Water) 500 g",
             "coffee", 1190),
    _Product("CUP-CAPP-2", "Cappuccino cups, set of 2", "Cappuccino-Tassen, 2er-Set", "cups", 2490),
    _Product("CUP-ESP-4", "Espresso cups, set of 4", "Espresso-Tassen, 4er-Set", "cups", 2990),
    _Product("CUP-TRAVEL", "Insulated travel mug", "Isolierter Thermobecher", "cups", 2490),
    _Product("AC-TAMPER", "Tamper 58 mm, stainless steel", "Tamper 58 mm, Edelstahl",
             "accessories", 3490),
    _Product("AC-SCALE", "Brew scale with timer", "Kaffeewaage mit Timer", "accessories", 4490),
    _Product("AC-JUG", "Milk jug 600 ml", "Milchkännchen 600 ml", "accessories", 1990),
    _Product("CL-DESCALE", "Descaler, 3 doses", "Entkalker, 3 Anwendungen", "cleaning", 1290),
    _Product("CL-FILTER-3", "Water filter cartridges, pack of 3",
             "Wasserfilter-Kartuschen, 3er-Pack", "cleaning", 2190),
    _Product("CL-TABS", "Cleaning tablets, 100", "Reinigungstabletten, 100 Stück", "cleaning",
             1490),
)  # fmt: skip
_SUPPLY_WEIGHTS = (20, 14, 10, 6, 5, 4, 4, 4, 4, 3, 8, 7, 5)
_SHIPPING_EUR = 490
_FREE_SHIPPING_EUR = 5000

# What app users do with what they bought: features by category, and the generic ones.
_FEATURES = (
    "setup",  # the setup wizard: started, completed or not
    "brew-profiles",
    "descaling",
    "shot-timer",
    "grind-settings",
    "milk-foam-presets",
    "bean-tracker",
    "recipes",
    "order-tracking",
)
_FEATURES_OF = {
    "coffee-machines": (1, 2, 3, 7),
    "grinders": (4, 7),
    "milk-frothers": (5, 7),
    "coffee": (6, 7),
}
_SETUP_FEATURE = 0
_TRACKING_FEATURE = 8
_RECIPES_FEATURE = 7

# Quiet hours customers choose for themselves (index 0: none, the journeys file's defaults).
_QUIET_HOURS = (None, (22 * 60, 7 * 60), (23 * 60, 6 * 60 + 30), (20 * 60, 9 * 60),
                (22 * 60 + 30, 7 * 60 + 30), (21 * 60, 6 * 60))  # fmt: skip

# Texts upstream shows customers, in English and German.
_PAYMENT_FAILED = (
    ("card declined by the bank", "Karte von der Bank abgelehnt"),
    ("card expired", "Karte abgelaufen"),
    ("3-D Secure confirmation not completed", "3-D-Secure-Bestätigung nicht abgeschlossen"),
    ("insufficient funds", "Konto nicht ausreichend gedeckt"),
)
_CANCELLED = (
    ("cancelled at your request", "auf Ihren Wunsch storniert"),
    ("the payment did not go through", "die Zahlung ist nicht eingegangen"),
)
_REFUNDED = (
    ("order cancelled", "Bestellung storniert"),
    ("return received", "Rücksendung erhalten"),
    ("goodwill credit for the late delivery", "Kulanzgutschrift für die verspätete Lieferung"),
    ("partial refund for a damaged item", "Teilerstattung für einen beschädigten Artikel"),
)
_DELAYED = (
    ("high parcel volume at the sorting centre", "hohes Paketaufkommen im Verteilzentrum"),
    ("bad weather on the route", "Unwetter auf der Strecke"),
    ("a vehicle breakdown", "eine Fahrzeugpanne"),
    ("customs clearance is taking longer", "die Zollabfertigung dauert länger"),  # international
)
_DELIVERY_FAILED = (
    (
        "nobody was at home; we try again on the next working day",
        "niemand war zu Hause; wir versuchen es am nächsten Werktag erneut",
    ),
    (
        "the address could not be found; please check it in your account",
        "die Adresse wurde nicht gefunden; bitte prüfen Sie sie in Ihrem Konto",
    ),
    (
        "the parcel is waiting for you at a nearby parcel shop",
        "das Paket liegt in einem Paketshop in Ihrer Nähe für Sie bereit",
    ),
)
_RETURNED = (
    ("not what I expected", "nicht wie erwartet"),
    ("changed my mind", "es mir anders überlegt"),
    ("arrived damaged", "beschädigt angekommen"),
)
_COMMENTS = (
    # 0-4: low ratings
    ("The milk frother leaks.", "Der Milchaufschäumer ist undicht."),
    ("Arrived with a cracked drip tray.", "Kam mit einer gesprungenen Abtropfschale an."),
    ("Much louder than I expected.", "Viel lauter als erwartet."),
    ("The delivery took far too long.", "Die Lieferung hat viel zu lange gedauert."),
    ("Stopped heating after a week.", "Heizt nach einer Woche nicht mehr."),
    # 5-6: middling
    (
        "Good coffee, but the setup was fiddly.",
        "Guter Kaffee, aber die Einrichtung war umständlich.",
    ),
    ("Does the job.", "Erfüllt seinen Zweck."),
    # 7-9: high
    ("Lovely crema, very happy!", "Tolle Crema, sehr zufrieden!"),
    ("Great beans, will order again.", "Super Bohnen, bestelle ich wieder."),
    ("Set up in five minutes. Love it.", "In fünf Minuten eingerichtet. Top!"),
    # 10-14: support requests
    ("How do I descale the machine?", "Wie entkalke ich die Maschine?"),
    ("One of the cups arrived broken.", "Eine Tasse kam zerbrochen an."),
    ("The grinder does not turn on.", "Die Mühle lässt sich nicht einschalten."),
    ("Where do I find the water filters?", "Wo finde ich die Wasserfilter?"),
    ("The app does not show my order.", "Die App zeigt meine Bestellung nicht an."),
)
_LOW_COMMENTS, _MID_COMMENTS, _HIGH_COMMENTS = range(0, 5), range(5, 7), range(7, 10)
# Support requests (comment, what it is about); 14 fits any order.
_SUPPORT_COMMENTS = (
    (10, "coffee-machines"),
    (11, "cups"),
    (12, "grinders"),
    (13, "cleaning"),
    (13, "coffee-machines"),
)
_NO_COMMENT = 63

_FIRST_NAMES = (
    ("anna", "lukas", "marie", "felix", "sophie", "jonas", "lea", "paul", "hannah", "leon",
     "clara", "elias", "mia", "noah", "lena", "jan"),
    ("olivia", "james", "amelia", "oliver", "isla", "jack", "ava", "arjun", "priya", "wei",
     "chloe", "lucas", "ana", "mateo", "grace", "liam"),
)  # fmt: skip
_LAST_NAMES = (
    ("schmidt", "schneider", "fischer", "weber", "meyer", "wagner", "becker", "hoffmann",
     "koch", "richter", "klein", "wolf", "neumann", "schwarz", "braun", "zimmermann"),
    ("smith", "jones", "taylor", "brown", "williams", "wilson", "johnson", "davies", "patel",
     "wright", "nguyen", "garcia", "kim", "singh", "murphy", "obrien"),
)  # fmt: skip
_DOMAINS = ("example.org", "example.com", "example.net")  # reserved for examples (RFC 2606)
_PLATFORMS = (None, "IOS", "ANDROID", "WEB")

# -- beats: one event of a planned life, packed into 64 bits ----------------------------------

_KINDS: tuple[tuple[TopicRole, str], ...] = (
    (TopicRole.PREFERENCES, "PREFERENCES"),
    (TopicRole.PURCHASES, "ORDER_PLACED"),
    (TopicRole.PURCHASES, "PAYMENT_FAILED"),
    (TopicRole.PURCHASES, "PAYMENT_SUCCEEDED"),
    (TopicRole.PURCHASES, "ORDER_CANCELLED"),
    (TopicRole.PURCHASES, "ORDER_REFUNDED"),
    (TopicRole.SHIPMENTS, "LABEL_CREATED"),
    (TopicRole.SHIPMENTS, "SHIPPED"),
    (TopicRole.SHIPMENTS, "DELAYED"),
    (TopicRole.SHIPMENTS, "OUT_FOR_DELIVERY"),
    (TopicRole.SHIPMENTS, "DELIVERY_FAILED"),
    (TopicRole.SHIPMENTS, "DELIVERED"),
    (TopicRole.SHIPMENTS, "RETURNED"),
    (TopicRole.APP_USAGE, "APP_OPENED"),
    (TopicRole.APP_USAGE, "PUSH_TOKEN_REGISTERED"),
    (TopicRole.APP_USAGE, "FEATURE_USED"),
    (TopicRole.APP_USAGE, "SETUP_COMPLETED"),
    (TopicRole.APP_USAGE, "SUPPORT_REQUESTED"),
    (TopicRole.APP_USAGE, "FEEDBACK_SUBMITTED"),
)
_KIND = {name: number for number, (_, name) in enumerate(_KINDS)}

# From the low bits up: arg (13), parcel (2), order (4), kind (5), then milliseconds since the
# run's origin (40). Sorting beats sorts them by time; equal times by kind, order and parcel.
_ARG_BITS, _PARCEL_BITS, _ORDER_BITS, _KIND_BITS = 13, 2, 4, 5
_TIME_SHIFT = _ARG_BITS + _PARCEL_BITS + _ORDER_BITS + _KIND_BITS
MAX_ORDERS = (1 << _ORDER_BITS) - 1

# What `arg` holds, by kind:
#   PREFERENCES         consent bits (email, sms, whatsapp, push, in_app), marketing << 5,
#                       quiet-hours choice << 6
#   PAYMENT_FAILED, ORDER_CANCELLED, DELIVERY_FAILED, RETURNED: the reason's index
#   ORDER_REFUNDED      reason | amount << 3 (0: the whole order, 1: its first parcel, 2: 15 %)
#   SHIPPED             days from today (local) to the expected delivery
#   DELAYED             days to the new expected delivery | reason << 5
#   FEATURE_USED        the feature's index
#   FEEDBACK_SUBMITTED  rating | comment << 3 | from the web << 9
#   SUPPORT_REQUESTED   comment
_FULL, _FIRST_PARCEL, _GOODWILL = 0, 1, 2


def _pack(offset_ms: int, kind: str, order: int, parcel: int, arg: int) -> int:
    beat = offset_ms << _KIND_BITS | _KIND[kind]
    beat = beat << _ORDER_BITS | order
    beat = beat << _PARCEL_BITS | parcel
    return beat << _ARG_BITS | arg


def _unpack(beat: int) -> tuple[int, int, int, int, int]:
    """(offset_ms, kind, order, parcel, arg)"""
    arg = beat & ((1 << _ARG_BITS) - 1)
    beat >>= _ARG_BITS
    parcel = beat & ((1 << _PARCEL_BITS) - 1)
    beat >>= _PARCEL_BITS
    order = beat & ((1 << _ORDER_BITS) - 1)
    beat >>= _ORDER_BITS
    return beat >> _KIND_BITS, beat & ((1 << _KIND_BITS) - 1), order, parcel, arg


class _Life:
    """A customer's planned events, and how far the stream has come through them."""

    __slots__ = ("beats", "index", "pos", "profile")

    def __init__(self, index: int, profile: int, beats: array[int]) -> None:
        self.index = index
        self.profile = profile  # region | platform << 5 | has_phone << 7 | salt << 8
        self.beats = beats
        self.pos = 0


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


# -- baskets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    product: _Product
    quantity: int
    unit_price_minor: int


@dataclass(frozen=True)
class _Basket:
    lines: tuple[_Line, ...]
    shipping_minor: int
    currency: str

    @property
    def total_minor(self) -> int:
        return self.shipping_minor + sum(
            line.quantity * line.unit_price_minor for line in self.lines
        )

    def first_parcel_minor(self) -> int:
        """What the first of two parcels carries (the first half of the lines)."""
        half = self.lines[: math.ceil(len(self.lines) / 2)]
        return sum(line.quantity * line.unit_price_minor for line in half)

    def setup_line(self) -> _Line | None:
        return next((line for line in self.lines if line.product.setup), None)


def _basket(seed: int, index: int, order: int, region: _Region) -> _Basket:
    """Order ``order`` of customer ``index``: the same basket whenever it is asked for."""
    rng = random.Random(f"aftercare-simulate:{seed}:{index}:order:{order}")
    chosen: list[tuple[_Product, int]] = []
    if rng.random() < (0.55 if order == 1 else 0.12):
        chosen.append((rng.choices(_MACHINES, weights=_MACHINE_WEIGHTS)[0], 1))
        extras = rng.choices((0, 1, 2, 3), weights=(30, 35, 25, 10))[0]
    else:
        extras = rng.choices((1, 2, 3), weights=(50, 35, 15))[0]
    for _ in range(extras):
        product = rng.choices(_SUPPLIES, weights=_SUPPLY_WEIGHTS)[0]
        if all(product is not p for p, _ in chosen):
            quantity = rng.choices((1, 2, 3), weights=(60, 30, 10))[0]
            chosen.append((product, quantity if product.category == "coffee" else 1))
    lines = tuple(
        _Line(product, quantity, _price(product.price_eur, region.currency))
        for product, quantity in chosen
    )
    goods = sum(line.quantity * line.unit_price_minor for line in lines)
    free = goods >= _price(_FREE_SHIPPING_EUR, region.currency)
    return _Basket(lines, 0 if free else _price(_SHIPPING_EUR, region.currency), region.currency)


def _price(eur_minor: int, currency: str) -> int:
    """A price in ``currency``, ending in .99 as shops like them."""
    if currency == "EUR":
        return eur_minor
    return math.ceil(eur_minor * _PER_EUR[currency] / 100) * 100 - 1


# -- rendering a beat as a record ----------------------------------------------------------------


def _render(plan: Plan, origin: datetime, life: _Life) -> SimEvent:
    offset, kind, order, parcel, arg = _unpack(life.beats[life.pos])
    at = origin + offset * MILLISECOND
    role, name = _KINDS[kind]
    profile = life.profile
    region = _REGIONS[profile & 31]
    customer = _customer_id(plan.seed, life.index)
    record: dict[str, Any] = {
        "event_id": f"{customer}-{life.pos:03d}",
        "customer_id": customer,
        "occurred_at": at,
    }
    salt = profile >> 8
    german = region.german
    order_id = f"{customer}-o{order}"
    if role is TopicRole.PREFERENCES:
        quiet = _QUIET_HOURS[arg >> 6]
        record.update(
            consent={
                "email": bool(arg & 1),
                "sms": bool(arg & 2),
                "whatsapp": bool(arg & 4),
                "push": bool(arg & 8),
                "in_app": bool(arg & 16),
            },
            marketing_opt_in=bool(arg & 32),
            unsubscribed=[],
            quiet_hours=None
            if quiet is None
            else {"start_minute": quiet[0], "end_minute": quiet[1]},
            timezone=region.timezone,
            locale=region.locale,
            email=_email(life.index, salt, german),
            phone=_phone(region, salt) if profile >> 7 & 1 else None,
        )
    elif role is TopicRole.PURCHASES:
        basket = _basket(plan.seed, life.index, order, region)
        reason: str | None = None
        total = basket.total_minor
        if name == "PAYMENT_FAILED":
            reason = _PAYMENT_FAILED[arg][german]
        elif name == "ORDER_CANCELLED":
            reason = _CANCELLED[arg][german]
        elif name == "ORDER_REFUNDED":
            reason = _REFUNDED[arg & 7][german]
            amount = arg >> 3
            if amount == _FIRST_PARCEL:
                total = basket.first_parcel_minor()
            elif amount == _GOODWILL:
                total = int(round(total * 0.15, -2))
        placed = name == "ORDER_PLACED"
        record.update(
            type=name,
            order_id=order_id,
            items=[
                {
                    "sku": line.product.sku,
                    "name": line.product.name_de if german else line.product.name,
                    "category": line.product.category,
                    "quantity": line.quantity,
                    "unit_price_minor": line.unit_price_minor,
                }
                for line in basket.lines
            ]
            if placed
            else [],
            total_minor=total,
            currency=basket.currency,
            contact={
                "email": _email(life.index, salt, german),
                "phone": _phone(region, salt) if profile >> 7 & 1 else None,
                "locale": region.locale,
                "timezone": region.timezone,
            }
            if placed
            else None,
            reason=reason,
        )
    elif role is TopicRole.SHIPMENTS:
        carrier = region.carriers[(salt + 7 * order + parcel) % len(region.carriers)]
        shipment = f"{order_id}-p{parcel}"
        code = hashlib.sha256(f"{plan.seed}:{shipment}".encode()).hexdigest()[:14].upper()
        slug = "".join(c if c.isalnum() else "-" for c in carrier.lower())
        eta: datetime | None = None
        reason = None
        if name in ("SHIPPED", "DELAYED"):
            zone = _zone(region.timezone)
            day = at.astimezone(zone).date() + (arg & 31) * DAY
            eta = _local(day, 18 * 60, zone)
        if name == "DELAYED":
            reason = _DELAYED[arg >> 5][german]
        elif name == "DELIVERY_FAILED":
            reason = _DELIVERY_FAILED[arg][german]
        elif name == "RETURNED":
            reason = _RETURNED[arg][german]
        record.update(
            type=name,
            order_id=order_id,
            shipment_id=shipment,
            carrier=carrier,
            tracking_url=f"https://tracking.example.com/{slug}/{code}",
            eta=eta,
            reason=reason,
        )
    else:
        platform = _PLATFORMS[profile >> 5 & 3]
        record.update(
            type=name,
            order_id=None,
            sku=None,
            feature=None,
            push_token=None,
            platform=platform,
            rating=None,
            comment=None,
        )
        bought = _basket(plan.seed, life.index, order, region) if order else None
        if name == "PUSH_TOKEN_REGISTERED":
            record["push_token"] = _push_token(plan.seed, life.index, platform)
        elif name == "FEATURE_USED":
            feature = _FEATURES[arg]
            record["feature"] = feature
            if bought is not None:
                line = bought.setup_line() if arg == _SETUP_FEATURE else None
                line = line or next(
                    (li for li in bought.lines if arg in _FEATURES_OF.get(li.product.category, ())),
                    bought.lines[0],
                )
                record["sku"] = line.product.sku
        elif name == "SETUP_COMPLETED" and bought is not None:
            line = bought.setup_line() or bought.lines[0]
            record.update(order_id=order_id, sku=line.product.sku)
        elif name == "FEEDBACK_SUBMITTED" and bought is not None:
            comment = arg >> 3 & 63
            record.update(
                order_id=order_id,
                sku=bought.lines[0].product.sku,
                rating=arg & 7,
                comment=None if comment == _NO_COMMENT else _COMMENTS[comment][german],
                platform="WEB" if arg >> 9 & 1 else platform,
            )
        elif name == "SUPPORT_REQUESTED":
            record.update(order_id=order_id if order else None, comment=_COMMENTS[arg][german])
    return SimEvent(at, role, record)


def _gets(holdouts: Holdouts, customer: str, journey: str, step: str, priority: Priority) -> bool:
    """Whether the customer is outside the holdout groups of that journey step."""
    return holdouts.reason(customer, journey, step, priority) is None


def _customer_id(seed: int, index: int) -> str:
    return f"sim{seed}-{index:07d}"


def _email(index: int, salt: int, german: bool) -> str:
    first = _FIRST_NAMES[not german][salt % 16]
    last = _LAST_NAMES[not german][salt >> 4 & 15]
    return f"{first}.{last}.{index}@{_DOMAINS[(salt >> 8) % len(_DOMAINS)]}"


def _phone(region: _Region, salt: int) -> str:
    prefix = region.mobile[(salt >> 10) % len(region.mobile)]
    number = (salt >> 12) % 10**region.digits
    return f"{region.dial}{prefix}{number:0{region.digits}d}"


def _push_token(seed: int, index: int, platform: str | None) -> str:
    digest = hashlib.sha256(f"aftercare-simulate:{seed}:{index}:push".encode()).hexdigest()
    if platform == "IOS":
        return digest  # an APNs device token: 32 bytes as hex
    return f"{digest[:22]}:APA91b{digest[22:]}"  # the shape of an FCM registration token


# -- time --------------------------------------------------------------------------------------


def _origin(plan: Plan) -> datetime:
    """The plan's start in UTC, rounded up to a whole millisecond (what Avro carries)."""
    start = plan.start.astimezone(UTC)
    extra = start.microsecond % 1000
    return start + timedelta(microseconds=1000 - extra) if extra else start


def _end_ms(plan: Plan, origin: datetime) -> int:
    """Milliseconds from ``origin`` to the end of the run: beats must come before it."""
    return -(-(plan.end - origin) // MILLISECOND)


def _arrival_span_ms(plan: Plan, end_ms: int) -> int:
    """Customers arrive over all but the run's last 35 days, and at least its first fifth."""
    days = min(plan.days, max(plan.days - TAIL_DAYS, plan.days * 0.22))
    return max(1, min(end_ms, int(days * 86_400_000)))


def _arrivals(plan: Plan, end_ms: int) -> Iterator[tuple[int, int]]:
    """(customer index, arrival in ms from the origin), in order, uniform over the arrival span.

    The sorted uniform sample is drawn one point at a time (each point is the minimum of the
    points still to come), so a million arrivals need no list and no sort.
    """
    rng = random.Random(f"aftercare-simulate:{plan.seed}:arrivals")
    span = _arrival_span_ms(plan, end_ms)
    u = 0.0
    for index in range(plan.customers):
        u += (1.0 - u) * (1.0 - rng.random() ** (1.0 / (plan.customers - index)))
        yield index, min(int(u * span), span - 1)


def _working_day(day: date, days: int) -> date:
    """``days`` delivery days after ``day`` (carriers do not deliver on Sundays)."""
    for _ in range(days):
        day += DAY
        while day.weekday() == 6:
            day += DAY
    return day


def _local(day: date, minutes: float, zone: ZoneInfo) -> datetime:
    """``minutes`` after local midnight of ``day`` in ``zone``, as UTC."""
    wall = datetime.combine(day, time(0), tzinfo=zone) + timedelta(minutes=minutes)
    return wall.astimezone(UTC)


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
