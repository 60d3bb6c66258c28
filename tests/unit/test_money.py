"""Currencies of sale and amounts in minor units, by the ISO 4217 table."""

from __future__ import annotations

import pytest

from pipeline.analytics.uplift import format_effect, revenue
from pipeline.money import currency_problem, exponent, format_minor


@pytest.mark.parametrize(
    ("currency", "places"), [("EUR", 2), ("JPY", 0), ("BHD", 3), ("CLF", 4), ("XAU", None)]
)
def test_the_exponent_is_the_tables(currency: str, places: int | None) -> None:
    assert exponent(currency) == places


@pytest.mark.parametrize("currency", ["EUR", "USD", "GBP", "CHF", "JPY", "BHD", "INR", "NZD"])
def test_currencies_of_sale_pass(currency: str) -> None:
    assert currency_problem(currency) is None


@pytest.mark.parametrize(
    ("currency", "words"),
    [
        ("XYZ", "is not in the ISO 4217 table"),
        ("euro", "three upper-case letters"),
        ("", "three upper-case letters"),
        ("usd", "codes are upper case (USD)"),
        ("XAU", "'Gold', which has no minor unit"),
        ("XDR", "no minor unit"),
        ("XTS", "not a currency of sale"),
        ("XXX", "not a currency of sale"),
        ("USN", "fund code 'US Dollar (Next day)'"),
        ("CLF", "fund code"),
    ],
)
def test_what_is_not_a_currency_of_sale_says_why(currency: str, words: str) -> None:
    problem = currency_problem(currency)
    assert problem is not None
    assert words in problem


@pytest.mark.parametrize(
    ("amount", "currency", "sign", "shown"),
    [
        (123456, "EUR", False, "1,234.56 EUR"),
        (123456, "JPY", False, "123,456 JPY"),
        (123456, "BHD", False, "123.456 BHD"),
        (1234.5, "EUR", True, "+12.35 EUR"),  # a mean of minor units
        (-250, "EUR", True, "-2.50 EUR"),
        (0, "EUR", True, "0.00 EUR"),
        (5, "XAU", False, "5 XAU minor units"),
    ],
)
def test_format_minor(amount: float, currency: str, sign: bool, shown: str) -> None:
    assert format_minor(amount, currency, sign=sign) == shown


def test_the_uplift_shows_revenue_in_the_currency_s_own_unit() -> None:
    assert format_effect(revenue("JPY"), 1500.0, sign=True) == "+1,500 JPY"
    assert format_effect(revenue("EUR"), 1500.0, sign=True) == "+15.00 EUR"
    assert format_effect(revenue("BHD"), 1500.0) == "1.500 BHD"
