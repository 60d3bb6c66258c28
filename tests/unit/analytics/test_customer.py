"""`aftercare customer`: one customer's state as support reads it, addresses masked."""

from __future__ import annotations

from datetime import timedelta

from pipeline.analytics.customer import CustomerView, as_json, as_text
from tests.samples import delivery_outcome
from tests.unit.journeys.scenario import CUSTOMER, T0, Scenario, parcel, placed, prefs

DAY = timedelta(days=1)


def _view() -> CustomerView:
    run = Scenario()
    run.feed(prefs(quiet=(22 * 60, 7 * 60)))
    run.feed(placed())
    run.feed(parcel("DELIVERED", T0 + DAY))
    assert run.state is not None
    held = delivery_outcome(
        customer_id=CUSTOMER, journey="cross_sell", step="offer", status="SUPPRESSED",
        reason="holdout", detail="journey holdout 10%", channel=None, occurred_at=T0 + 2 * DAY,
    )  # fmt: skip
    return CustomerView(CUSTOMER, 3, run.state, T0 + 2 * DAY, ({**held, "_topic": "deliveries"},))


def test_the_text_says_what_support_asks_and_masks_addresses() -> None:
    text = "\n".join(as_text(_view()))
    assert f"customer {CUSTOMER} (partition 3)" in text
    assert "email a***@example.org" in text
    assert "ada@example.org" not in text
    assert "+4915112345678" not in text
    assert "quiet hours: 22:00-07:00 (their own)" in text
    assert "o1: placed 2026-03-02T09:30Z, 536.00 EUR, delivered 2026-03-03T09:30Z" in text
    assert "product_education.tips  email, push, in_app  due 2026-03-04T09:30Z" in text
    assert "SUPPRESSED  cross_sell.offer  -  holdout: journey holdout 10%" in text


def test_the_json_is_the_state_without_addresses_or_message_contents() -> None:
    document = as_json(_view())
    assert document["state"]["contact"]["email"] == "a***@example.org"
    assert document["state"]["contact"]["phone"] == "+49***78"
    assert all("context" not in p["touchpoint"] for p in document["state"]["pending"])
    assert document["history"][0]["reason"] == "holdout"
    assert document["next_wake"].startswith("2026-03-04")


def test_a_customer_nobody_knows() -> None:
    lines = as_text(CustomerView("nobody", 0, None, None, ()))
    assert "the worker keeps no state for this customer" in lines[1]
    assert "history: nothing on deliveries or dispatch" in lines[2]


def test_a_providers_words_are_shown_with_the_addresses_masked() -> None:
    bounced = delivery_outcome(
        customer_id=CUSTOMER, status="FAILED", reason="provider_rejected",
        detail="550 5.1.1 <ada.lovelace@example.org>: user unknown; sms to +4915112345678 failed",
        occurred_at=T0 + DAY,
    )  # fmt: skip
    view = CustomerView(CUSTOMER, 0, None, None, ({**bounced, "_topic": "deliveries"},))
    text = "\n".join(as_text(view))
    assert "ada.lovelace@example.org" not in text
    assert "+4915112345678" not in text
    assert "a***@example.org" in text
    assert "ada.lovelace" not in str(as_json(view))
