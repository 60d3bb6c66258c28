"""The policies that apply across journeys, one behaviour per test."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.journeys.engine import LATE_PREFERENCES_GRACE
from pipeline.journeys.model import (
    Channel,
    Contact,
    PreferencesErased,
    Priority,
    QuietHours,
    SendTouchpoint,
)
from pipeline.journeys.policies import address, has_address, in_quiet_hours, quiet_hours_end, zone
from pipeline.journeys.rules import FrequencyCap
from tests.unit.journeys.scenario import (
    BOOK,
    CUSTOMER,
    T0,
    Scenario,
    app,
    book_with,
    parcel,
    placed,
    prefs,
    purchase,
)

DAY = timedelta(days=1)
BERLIN = zone("Europe/Berlin")


def test_an_email_opt_out_is_honoured_even_for_transactional_messages() -> None:
    run = Scenario()
    run.feed(prefs(email=False, in_app=False))
    run.feed(placed())
    run.advance(LATE_PREFERENCES_GRACE)  # preferences that happened earlier may still come
    assert run.sent() == []
    assert ("order_confirmation", "SUPPRESSED", "no_consent") in run.cancelled()


def test_no_address_for_any_allowed_channel_is_recorded_as_such() -> None:
    run = Scenario()
    run.feed(prefs(email=False, in_app=False, sms=True, phone=None))
    run.feed(placed())
    run.feed(parcel("SHIPPED", T0 + DAY))
    run.advance(LATE_PREFERENCES_GRACE)
    assert ("shipped", "SUPPRESSED", "no_address") in run.cancelled()


def test_engagement_never_goes_to_a_channel_without_consent() -> None:
    run = Scenario()
    run.feed(prefs(email=False, push=False, in_app=True))
    run.feed(placed())
    run.feed(parcel("DELIVERED", T0 + DAY))
    run.advance(2 * DAY)
    (tips,) = [s for s in run.sent() if s.journey == "product_education"]
    assert tips.channels == ("IN_APP",)


@pytest.mark.parametrize(
    ("local_time", "quiet"),
    [
        ("20:59", False),
        ("21:00", True),
        ("23:30", True),
        ("03:00", True),
        ("07:59", True),
        ("08:00", False),
    ],
)
def test_quiet_hours_wrap_midnight(local_time: str, quiet: bool) -> None:
    hour, minute = map(int, local_time.split(":"))
    moment = datetime(2026, 6, 10, hour, minute, tzinfo=BERLIN)
    assert in_quiet_hours(QuietHours(21 * 60, 8 * 60), moment, BERLIN) is quiet


@pytest.mark.parametrize(
    ("night_of", "end_utc"),
    [
        # Clocks go forward on 29 March 2026 (CET -> CEST): 08:00 local is 06:00 UTC.
        (datetime(2026, 3, 28, 23, 0, tzinfo=BERLIN), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        # Clocks go back on 25 October 2026 (CEST -> CET): 08:00 local is 07:00 UTC.
        (datetime(2026, 10, 24, 23, 0, tzinfo=BERLIN), datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
        # An ordinary winter night.
        (datetime(2026, 1, 14, 22, 0, tzinfo=BERLIN), datetime(2026, 1, 15, 7, 0, tzinfo=UTC)),
        # After midnight, the window ends the same local day.
        (datetime(2026, 1, 15, 2, 0, tzinfo=BERLIN), datetime(2026, 1, 15, 7, 0, tzinfo=UTC)),
    ],
)
def test_quiet_hours_end_at_local_08_00_across_dst_changes(
    night_of: datetime, end_utc: datetime
) -> None:
    assert quiet_hours_end(QuietHours(21 * 60, 8 * 60), night_of, BERLIN) == end_utc


def test_phone_channels_wait_out_quiet_hours_in_the_customers_time_zone() -> None:
    run = Scenario()
    run.feed(prefs(sms=True))
    run.feed(placed())
    evening = datetime(2026, 3, 2, 23, 15, tzinfo=BERLIN)
    run.feed(parcel("SHIPPED", evening))
    assert "shipped" not in run.sent_journeys()
    run.advance(12 * timedelta(hours=1))
    (shipped,) = [s for s in run.sent() if s.journey == "shipped"]
    assert shipped.channels[0] == "SMS"
    assert shipped.at == datetime(2026, 3, 3, 8, 0, tzinfo=BERLIN)


def test_a_customers_own_quiet_hours_win_over_the_default() -> None:
    run = Scenario()
    run.feed(prefs(sms=True, quiet=(23 * 60, 6 * 60)))
    run.feed(placed())
    run.feed(parcel("SHIPPED", datetime(2026, 3, 2, 22, 0, tzinfo=BERLIN)))
    assert "shipped" in run.sent_journeys()  # 22:00 is outside 23:00-06:00


def test_email_is_never_held_back_by_quiet_hours() -> None:
    run = Scenario()
    run.feed(placed(at=datetime(2026, 3, 2, 23, 30, tzinfo=BERLIN)))
    assert "order_confirmation" in run.sent_journeys()


def test_an_alert_that_would_expire_in_quiet_hours_expires_instead_of_going_late() -> None:
    run = Scenario()
    run.feed(prefs(whatsapp=True, in_app=False))
    run.feed(placed())
    run.feed(parcel("OUT_FOR_DELIVERY", datetime(2026, 3, 2, 21, 30, tzinfo=BERLIN)))  # valid 8 h
    run.advance(2 * DAY)
    assert "out_for_delivery" not in run.sent_journeys()
    assert ("out_for_delivery", "EXPIRED", "quiet_hours") in run.cancelled()


def test_frequency_cap_one_engagement_per_day() -> None:
    run = Scenario(book=book_with(frequency_caps=(FrequencyCap(1, DAY),)))
    run.feed(prefs())
    for order in ("o1", "o2"):  # two orders delivered the same day: two education mails due at once
        run.feed(placed(order))
        run.feed(parcel("DELIVERED", T0 + DAY, order=order, shipment=f"s-{order}"))
    run.advance(DAY + timedelta(minutes=1))
    assert run.sent_journeys().count("product_education") == 1
    assert ("product_education", "SUPPRESSED", "frequency_cap") in run.cancelled()


def test_frequency_cap_three_per_week_counts_across_journeys() -> None:
    caps = (FrequencyCap(3, 7 * DAY),)
    run = Scenario(book=book_with(frequency_caps=caps))
    run.feed(prefs(marketing=True))
    for day, order in enumerate(("o1", "o2", "o3", "o4")):
        at = T0 + day * DAY
        run.feed(placed(order, at=at))
        run.feed(parcel("DELIVERED", at + timedelta(hours=1), order=order, shipment=f"s-{order}"))
    run.advance(12 * DAY)
    engagement = [s.at for s in run.sent() if s.journey in ("product_education", "need_help")]
    for sent in engagement:
        assert sum(1 for other in engagement if sent - 7 * DAY < other <= sent) <= 3
    assert len(engagement) >= 3
    assert any(reason == "frequency_cap" for _, _, reason in run.cancelled())


def test_transactional_messages_are_never_capped() -> None:
    run = Scenario(book=book_with(frequency_caps=(FrequencyCap(1, 7 * DAY),)))
    for order in ("o1", "o2", "o3"):
        run.feed(placed(order))
    assert run.sent_journeys().count("order_confirmation") == 3


def test_a_touchpoint_past_its_validity_is_expired_never_sent_late() -> None:
    run = Scenario()
    run.feed(placed())
    late = run.feed(parcel("SHIPPED", T0 + DAY), lag=2 * DAY)  # the event arrives two days late
    assert not [c for c in late if isinstance(c, SendTouchpoint)]
    assert ("shipped", "EXPIRED", "expired") in run.cancelled()


def test_a_duplicate_event_changes_nothing() -> None:
    run = Scenario()
    event = placed()
    first = run.feed(event)
    state = run.state
    assert run.feed(event) == []
    assert run.last.used is False
    assert run.last.note == "duplicate"
    assert run.state == state
    assert first


def test_the_same_order_placed_twice_under_new_ids_confirms_once() -> None:
    run = Scenario()
    run.feed(placed())
    run.feed(placed())
    assert run.sent_journeys().count("order_confirmation") == 1


@pytest.mark.parametrize(
    ("late_kind", "journey"),
    [("SHIPPED", "shipped"), ("OUT_FOR_DELIVERY", "out_for_delivery"), ("DELAYED", "delay_notice")],
)
def test_no_shipping_news_after_delivery(late_kind: str, journey: str) -> None:
    run = Scenario()
    run.feed(prefs(sms=True))
    run.feed(placed())
    run.feed(parcel("DELIVERED", T0 + 2 * DAY))
    run.feed(parcel(late_kind, T0 + DAY))  # happened before delivery, arrived after it
    assert journey not in run.sent_journeys()
    assert run.last.note == "stale"


def test_a_shipped_alert_held_by_quiet_hours_is_dropped_once_the_parcel_is_delivered() -> None:
    run = Scenario()
    run.feed(prefs(sms=True))
    run.feed(placed())
    run.feed(parcel("SHIPPED", datetime(2026, 3, 2, 23, 0, tzinfo=BERLIN)))
    run.feed(parcel("DELIVERED", datetime(2026, 3, 3, 7, 30, tzinfo=BERLIN)))
    run.advance(DAY)
    assert "shipped" not in run.sent_journeys()
    assert ("shipped", "SUPPRESSED", "superseded:DELIVERED") in run.cancelled()


def test_preferences_after_an_erasure_apply_even_if_the_worker_clock_is_ahead() -> None:
    run = Scenario()
    run.feed(prefs(T0 - DAY, email=True))
    run.now = T0 + 5 * DAY  # the worker runs late, or on an accelerated clock
    run._decide(PreferencesErased(CUSTOMER, run.now))
    run.feed(prefs(T0, email=False, in_app=False))  # the customer's new choice, after erasure
    assert run.last.used
    run.feed(placed(at=run.now))
    assert "order_confirmation" not in run.sent_journeys()


def test_older_preferences_never_override_newer_ones() -> None:
    run = Scenario()
    run.feed(prefs(T0, email=False))
    run.feed(prefs(T0 - DAY, email=True))  # an older picture, arriving late
    assert run.last.note == "stale"
    run.feed(placed())
    assert "order_confirmation" in run.sent_journeys()  # in-app is still allowed
    assert [s.channels for s in run.sent()] == [("IN_APP",)]


def test_no_journey_starts_for_an_order_cancelled_before_its_events_arrived() -> None:
    run = Scenario()
    run.feed(prefs())
    run.feed(purchase("ORDER_CANCELLED", at=T0 + timedelta(minutes=5)))
    run.feed(placed())  # placed earlier, arrived later
    run.feed(parcel("DELIVERED", T0 + DAY))
    run.advance(40 * DAY)
    assert run.sent_journeys() == ["cancellation"]


def test_touchpoint_ids_are_deterministic_and_distinct() -> None:
    def ids() -> list[str]:
        run = Scenario()
        run.feed(placed("o1", event_id="a"))
        run.feed(placed("o2", event_id="b"))
        run.advance(3 * DAY)
        return [c.touchpoint.touchpoint_id for _, c in run.log]

    first, second = ids(), ids()
    assert first == second
    sends = [i for i in first if i]
    assert len(set(sends)) == len({(i) for i in sends})
    assert len(set(first)) == 4  # confirmation and watchdog, for each of two orders


def test_a_journey_switched_off_after_scheduling_is_suppressed_not_sent() -> None:
    run = Scenario()
    run.feed(placed())
    run.engine = type(run.engine)(
        replace(
            run.book,
            journeys=tuple(j for j in run.book.journeys if j.name != "not_shipped_watchdog"),
        )
    )
    run.advance(3 * DAY)
    assert ("not_shipped_watchdog", "SUPPRESSED", "journey_disabled") in run.cancelled()


def test_app_activity_is_tracked_from_every_kind_of_usage() -> None:
    run = Scenario()
    run.feed(app("FEATURE_USED", T0))
    assert run.state is not None
    assert run.state.last_app_activity == T0


def _delivered_late_in_the_evening(run: Scenario) -> None:
    """A coffee machine delivered at 22:30 in Berlin, the night before the clocks go forward:
    product education (engagement, email first) falls due at 22:30 the next evening."""
    run.feed(prefs(T0 - DAY, push=True))
    run.feed(placed(at=datetime(2026, 3, 25, 10, 0, tzinfo=BERLIN)))
    run.feed(parcel("SHIPPED", datetime(2026, 3, 26, 10, 0, tzinfo=BERLIN)))
    run.feed(parcel("DELIVERED", datetime(2026, 3, 27, 22, 30, tzinfo=BERLIN)))


def test_engagement_email_waits_out_quiet_hours_to_the_windows_end_dst_safe() -> None:
    run = Scenario(now=datetime(2026, 3, 25, 9, 0, tzinfo=UTC))
    _delivered_late_in_the_evening(run)
    run.advance(2 * DAY)
    (education,) = [s for s in run.sent() if s.journey == "product_education"]
    assert education.channels[0] == "EMAIL"
    # 08:00 in Berlin on the first morning of summer time: 06:00 UTC, not 07:00.
    assert education.at == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    # The cap counts the send when it went, not when it first fell due.
    assert run.state is not None
    assert run.state.engagement_sends[-1] == education.at


def test_transactional_email_is_never_held_by_quiet_hours() -> None:
    run = Scenario()
    run.feed(prefs(push=True))
    run.feed(placed(at=datetime(2026, 3, 2, 23, 30, tzinfo=BERLIN)))
    (confirmation,) = [s for s in run.sent() if s.journey == "order_confirmation"]
    assert confirmation.at < datetime(2026, 3, 2, 23, 31, tzinfo=BERLIN)


def test_which_channels_wait_is_a_setting_per_priority() -> None:
    hold = dict(BOOK.quiet_channels)
    hold[Priority.ENGAGEMENT] = frozenset({Channel.SMS})  # engagement email may go at night
    run = Scenario(book=book_with(quiet_channels=hold), now=datetime(2026, 3, 25, 9, 0, tzinfo=UTC))
    _delivered_late_in_the_evening(run)
    run.advance(2 * DAY)
    (education,) = [s for s in run.sent() if s.journey == "product_education"]
    assert education.at < datetime(2026, 3, 28, 22, 31, tzinfo=BERLIN)


def test_consent_granted_earlier_but_read_later_is_honoured() -> None:
    # PAYMENT_FAILED read before the preferences that granted SMS a second earlier (beyond the
    # worker's idle bound): the urgent SMS still goes, late by the delay of the preferences only.
    run = Scenario()
    run.feed(placed())
    run.feed(purchase("PAYMENT_FAILED", at=T0 + timedelta(hours=1)))
    assert ("payment_failed", "sms") not in [(s.journey, s.step) for s in run.sent()]
    run.feed(
        prefs(T0 + timedelta(hours=1) - timedelta(seconds=1), sms=True), lag=timedelta(minutes=2)
    )
    sms = [s for s in run.sent() if (s.journey, s.step) == ("payment_failed", "sms")]
    assert [s.channels for s in sms] == [("SMS",)]
    assert ("payment_failed", "SUPPRESSED", "no_consent") not in run.cancelled()


def test_consent_that_never_comes_is_suppressed_once_the_grace_has_passed() -> None:
    run = Scenario()
    run.feed(placed())
    run.feed(purchase("PAYMENT_FAILED", at=T0 + timedelta(hours=1)))
    run.advance(LATE_PREFERENCES_GRACE - timedelta(minutes=1))
    assert ("payment_failed", "SUPPRESSED", "no_consent") not in run.cancelled()
    run.advance(timedelta(minutes=2))
    assert run.cancelled().count(("payment_failed", "SUPPRESSED", "no_consent")) == 1
    assert ("payment_failed", "sms") not in [(s.journey, s.step) for s in run.sent()]


def test_an_unsubscribed_channel_carries_no_engagement_but_still_every_receipt() -> None:
    run = Scenario()
    run.feed(replace(prefs(in_app=False), unsubscribed=(Channel.EMAIL,)))
    run.feed(placed())
    run.feed(parcel("DELIVERED", T0 + DAY))
    run.advance(2 * DAY)
    sent = {(s.journey, s.channels) for s in run.sent()}
    assert ("order_confirmation", ("EMAIL",)) in sent  # transactional: still by email
    assert ("product_education", "SUPPRESSED", "no_consent") in run.cancelled()


@pytest.mark.parametrize("channel", list(Channel))
@pytest.mark.parametrize("email", [None, "", "ada@example.com"])
@pytest.mark.parametrize("phone", [None, "", "+4915112345678"])
@pytest.mark.parametrize("push_token", [None, "", "fcm-token"])
def test_has_address_is_whether_address_finds_one(
    channel: Channel, email: str | None, phone: str | None, push_token: str | None
) -> None:
    contact = Contact(email=email, phone=phone, push_token=push_token)
    found = address(channel, email=email, phone=phone, push_token=push_token, customer_id="c-1")
    assert has_address(contact, channel, "c-1") is (found is not None)
