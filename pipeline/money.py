"""Currencies of sale and amounts in minor units, by the ISO 4217 table (the ``iso4217`` package).

Every amount on Aftercare's topics is an integer of the currency's minor unit: cents of EUR, yen
of JPY (no minor unit), fils of BHD (thousandths). The table's *exponent* says how many decimals
the minor unit stands for, so 123456 is 1,234.56 EUR, 123,456 JPY and 123.456 BHD.

A **currency of sale** is a code in the table with a minor unit and not marked as a fund. The
table also lists units that nothing is sold in: precious metals (XAU, XAG, ...), the SDR (XDR),
the codes for testing (XTS) and for no currency (XXX). None of those has a minor unit, so an
amount in minor units means nothing for them. Funds (USN, BOV, CLF, ...) are bookkeeping units of
account beside a country's currency, which is what a customer pays in. Both are refused.

Everything here is pure: lookups in tables built once, at import.
"""

from __future__ import annotations

import iso4217

_EXPONENTS: dict[str, int | None] = {c.code: c.exponent for c in iso4217.Currency}
_NAMES: dict[str, str] = {c.code: c.currency_name for c in iso4217.Currency}
_FUNDS = frozenset(
    code.text.strip()
    for entry in iso4217.raw_xml.iter("CcyNtry")
    if (name := entry.find("CcyNm")) is not None
    and name.get("IsFund") == "true"
    and (code := entry.find("Ccy")) is not None
    and code.text
)


def exponent(currency: str) -> int | None:
    """Decimals of ``currency``'s minor unit (EUR 2, JPY 0, BHD 3); None if it has none or is
    not an ISO 4217 code."""
    return _EXPONENTS.get(currency)


def currency_problem(currency: str) -> str | None:
    """Why ``currency`` is not a currency of sale, or None; the words follow the code."""
    if currency not in _EXPONENTS:
        if currency.upper() in _EXPONENTS:
            return f"is not an ISO 4217 code: codes are upper case ({currency.upper()})"
        if len(currency) == 3 and currency.isalpha():
            return "is not in the ISO 4217 table of currencies (like EUR, USD, JPY)"
        return "is not an ISO 4217 currency code (three upper-case letters, like EUR)"
    if _EXPONENTS[currency] is None:
        return (
            f"is ISO 4217's {_NAMES[currency]!r}, which has no minor unit: not a currency of "
            "sale (amounts are in minor units of a currency such as EUR)"
        )
    if currency in _FUNDS:
        return (
            f"is ISO 4217's fund code {_NAMES[currency]!r}, a unit of account: not a currency "
            "of sale (send the currency the customer paid in)"
        )
    return None


def format_minor(amount: float, currency: str, *, sign: bool = False) -> str:
    """``amount`` minor units of ``currency`` in its major unit, with the code: ``1,234.56 EUR``,
    ``123,456 JPY``, ``123.456 BHD``; a code without a known exponent as ``123,456 XAU minor
    units``. ``amount`` may be fractional (a mean); ``sign`` puts ``+`` before a gain."""
    places = exponent(currency)
    plus = "+" if sign and amount > 0 else ""
    if places is None:
        return f"{plus}{amount:,.0f} {currency} minor units"
    return f"{plus}{amount / 10**places:,.{places}f} {currency}"
