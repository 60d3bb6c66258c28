"""The simulated world: regions, the shop's catalogue and baskets, the words customers use."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

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
