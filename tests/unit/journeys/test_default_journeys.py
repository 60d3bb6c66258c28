"""Every default journey of the design, as a customer lives it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.journeys.model import SendTouchpoint
from tests.unit.journeys.scenario import T0, Scenario, app, parcel, placed, prefs, purchase

DAY = timedelta(days=1)


def delivered_customer(**consent: bool) -> Scenario:
    run = Scenario()
    run.feed(prefs(**consent))
    run.feed(placed())
    run.feed(parcel("SHIPPED", T0 + DAY))
    run.feed(parcel("DELIVERED", T0 + 2 * DAY))
    return run


def test_order_confirmation_goes_at_once_with_everything_in_it() -> None:
    run = Scenario()
    commands = run.feed(placed())
    (send,) = [c for c in commands if isinstance(c, SendTouchpoint)]
    assert send.touchpoint.journey == "order_confirmation"
    assert [c.value for c in send.channels] == ["EMAIL", "IN_APP"]
    context = send.touchpoint.context
    assert [i.sku for i in context.items] == ["CM-900", "BEANS"]
    assert (context.total_minor, context.currency) == (53600, "EUR")
    assert send.recipient.email == "ada@example.org"
    assert send.touchpoint.due_at == T0


def test_payment_failed_goes_by_sms_and_email_even_at_night() -> None:
    run = Scenario()
    run.feed(prefs(sms=True))
    night = T0.replace(hour=23)  # 00:00 in Berlin
    run.feed(purchase("PAYMENT_FAILED", at=night, reason="Card declined"))
    # Both at once; between touchpoints due at the same instant the order is the ids'.
    assert sorted((s.journey, s.step, s.channels) for s in run.sent()) == [
        ("payment_failed", "email", ("EMAIL",)),
        ("payment_failed", "sms", ("SMS",)),
    ]


@pytest.mark.parametrize(
    ("consent", "push_token", "first"),
    [
        ({"whatsapp": True, "sms": True, "push": True}, "tok", "WHATSAPP"),
        ({"sms": True, "push": True}, "tok", "SMS"),
        ({"push": True}, "tok", "PUSH"),
        ({"push": True}, None, "EMAIL"),
        ({}, None, "EMAIL"),
    ],
)
def test_shipped_prefers_whatsapp_then_sms_then_push_then_email(
    consent: dict[str, bool], push_token: str | None, first: str
) -> None:
    run = Scenario()
    run.feed(prefs(**consent))
    if push_token:
        run.feed(app("PUSH_TOKEN_REGISTERED", T0 - DAY, push_token=push_token))
    run.feed(placed())
    run.feed(parcel("SHIPPED", T0 + DAY, tracking_url="https://t.example/s1", carrier="DHL"))
    (shipped,) = [s for s in run.sent() if s.journey == "shipped"]
    assert shipped.channels[0] == first
    send = next(
        c for _, c in run.log if isinstance(c, SendTouchpoint) and c.touchpoint.journey == "shipped"
    )
    assert send.touchpoint.context.tracking_url == "https://t.example/s1"


def test_out_for_delivery_and_delivered_are_real_time_alerts_on_the_chat_channel() -> None:
    run = Scenario()
    run.feed(prefs(whatsapp=True))
    run.feed(placed())
    run.feed(parcel("OUT_FOR_DELIVERY", T0 + DAY))
    run.feed(parcel("DELIVERED", T0 + DAY + timedelta(hours=3)))
    alerts = [
        (s.journey, s.channels[0], s.at) for s in run.sent() if s.journey != "order_confirmation"
    ]
    assert alerts == [
        ("out_for_delivery", "WHATSAPP", T0 + DAY + timedelta(seconds=1)),
        ("delivered", "WHATSAPP", T0 + DAY + timedelta(hours=3, seconds=1)),
    ]


def test_delay_notice_says_why_and_the_new_eta() -> None:
    run = Scenario()
    run.feed(placed())
    eta = T0 + 5 * DAY
    commands = run.feed(parcel("DELAYED", T0 + DAY, reason="Storm at the hub", eta=eta))
    (send,) = [c for c in commands if isinstance(c, SendTouchpoint)]
    assert send.touchpoint.journey == "delay_notice"
    assert (send.touchpoint.context.reason, send.touchpoint.context.eta) == (
        "Storm at the hub",
        eta,
    )


def test_not_shipped_watchdog_fires_after_48_hours_without_shipping() -> None:
    run = Scenario()
    run.feed(placed())
    assert run.scheduled() == ["not_shipped_watchdog"]
    run.advance(47 * timedelta(hours=1))
    assert "not_shipped_watchdog" not in run.sent_journeys()
    run.advance(timedelta(hours=2))
    (notice,) = [s for s in run.sent() if s.journey == "not_shipped_watchdog"]
    assert notice.at == T0 + 2 * DAY


def test_not_shipped_watchdog_is_cancelled_the_moment_the_order_ships() -> None:
    run = Scenario()
    run.feed(placed())
    run.feed(parcel("SHIPPED", T0 + DAY))
    run.advance(5 * DAY)
    assert ("not_shipped_watchdog", "SUPPRESSED", "exit:SHIPPED") in run.cancelled()
    assert "not_shipped_watchdog" not in run.sent_journeys()


@pytest.mark.parametrize("kind", ["ORDER_CANCELLED", "ORDER_REFUNDED"])
def test_cancellation_and_refund_are_confirmed_and_end_everything_pending(kind: str) -> None:
    run = delivered_customer()
    commands = run.feed(purchase(kind, at=T0 + 2 * DAY + timedelta(hours=2)))
    confirm = "cancellation" if kind == "ORDER_CANCELLED" else "refund"
    assert [c.touchpoint.journey for c in commands if isinstance(c, SendTouchpoint)] == [confirm]
    ended = {journey for journey, outcome, reason in run.cancelled() if reason == f"exit:{kind}"}
    assert ended == {"product_education", "need_help", "feedback_request", "cross_sell"}
    run.advance(60 * DAY)
    assert run.state is not None
    assert run.state.pending == ()
    assert set(run.sent_journeys()) == {"order_confirmation", "shipped", "delivered", confirm}


def test_product_education_comes_a_day_after_delivery_never_right_after_purchase() -> None:
    run = delivered_customer()
    assert "product_education" not in run.sent_journeys()
    run.advance(DAY + timedelta(minutes=1))
    (tips,) = [s for s in run.sent() if s.journey == "product_education"]
    assert tips.at == T0 + 3 * DAY
    send = next(
        c
        for _, c in run.log
        if isinstance(c, SendTouchpoint) and c.touchpoint.journey == "product_education"
    )
    assert send.touchpoint.context.categories == ("coffee", "coffee-machines")


def test_need_help_comes_three_days_after_delivery_only_without_setup() -> None:
    run = delivered_customer()
    run.advance(4 * DAY)
    assert "need_help" in run.sent_journeys()

    done = delivered_customer()
    done.feed(app("SETUP_COMPLETED", T0 + 2 * DAY + timedelta(hours=5)))
    done.advance(4 * DAY)
    assert "need_help" not in done.sent_journeys()
    assert ("need_help", "SUPPRESSED", "condition:no_setup_since_delivery") in done.cancelled()


def test_feedback_request_after_14_days_once_per_order_and_not_after_a_return() -> None:
    run = delivered_customer()
    run.feed(parcel("DELIVERED", T0 + 2 * DAY, shipment="s2"))  # a second parcel of the order
    run.advance(15 * DAY)
    assert run.sent_journeys().count("feedback_request") == 1

    returned = delivered_customer()
    returned.feed(parcel("RETURNED", T0 + 6 * DAY))
    returned.advance(40 * DAY)
    assert not {"feedback_request", "cross_sell"} & set(returned.sent_journeys())
    assert ("feedback_request", "SUPPRESSED", "exit:RETURNED") in returned.cancelled()


def test_a_low_rating_goes_to_a_human_and_a_high_one_may_ask_for_a_review() -> None:
    low = delivered_customer()
    low.feed(app("FEEDBACK_SUBMITTED", T0 + 5 * DAY, order_id="o1", rating=1))
    assert [s.channels for s in low.sent() if s.journey == "support_handoff"] == [("WEBHOOK",)]

    high = delivered_customer()
    high.feed(prefs(T0 + DAY, marketing=True))
    high.advance(8 * DAY)  # past education and need-help, out of the 24-hour cap
    high.feed(app("FEEDBACK_SUBMITTED", high.now, order_id="o1", rating=5))
    high.advance(2 * timedelta(hours=1))
    assert "review_request" in high.sent_journeys()
    assert "support_handoff" not in high.sent_journeys()


def test_cross_sell_after_30_days_needs_marketing_opt_in() -> None:
    without = delivered_customer()
    without.advance(31 * DAY)
    assert ("cross_sell", "SUPPRESSED", "no_marketing_opt_in") in without.cancelled()

    opted_in = delivered_customer()
    opted_in.feed(prefs(T0, marketing=True))
    opted_in.advance(31 * DAY)
    (offer,) = [s for s in opted_in.sent() if s.journey == "cross_sell"]
    assert offer.at == T0 + 32 * DAY


def test_reengagement_pushes_after_14_quiet_days_then_emails_7_days_later() -> None:
    run = Scenario()
    run.feed(prefs(push=True))
    run.feed(app("PUSH_TOKEN_REGISTERED", T0, push_token="tok"))
    run.advance(14 * DAY + timedelta(minutes=1))
    assert [(s.journey, s.step) for s in run.sent()] == [("reengagement", "push")]
    run.advance(8 * DAY)
    assert [(s.journey, s.step) for s in run.sent()] == [
        ("reengagement", "push"),
        ("reengagement", "email"),
    ]
    run.advance(60 * DAY)  # one re-engagement per quiet spell
    assert len(run.sent()) == 2


def test_reengagement_email_is_dropped_when_the_customer_comes_back() -> None:
    run = Scenario()
    run.feed(prefs(push=True))
    run.feed(app("PUSH_TOKEN_REGISTERED", T0, push_token="tok"))
    run.advance(15 * DAY)
    run.feed(app("APP_OPENED", run.now))
    run.advance(8 * DAY)
    assert ("reengagement", "SUPPRESSED", "condition:app_quiet_since_trigger") in run.cancelled()
    assert [s.step for s in run.sent()] == ["push"]


def test_a_failed_delivery_attempt_is_reported_until_the_parcel_arrives() -> None:
    run = Scenario()
    run.feed(prefs(sms=True))
    run.feed(placed())
    run.feed(parcel("DELIVERY_FAILED", T0 + DAY, reason="Nobody at home"))
    run.feed(parcel("DELIVERED", T0 + 2 * DAY))
    run.feed(parcel("DELIVERY_FAILED", T0 + DAY + timedelta(hours=3)))  # old news, arriving late
    assert [s.journey for s in run.sent()].count("delivery_failed") == 1
