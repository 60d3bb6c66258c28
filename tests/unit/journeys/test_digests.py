"""Digests: what of one step comes due together goes as one message that lists it all, decided
the same way after any restart; and a parcel alert overtaken by the parcel is replaced, not sent."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.journeys.model import CancelTouchpoint, SendTouchpoint
from pipeline.journeys.rules import Digest
from pipeline.journeysfile import JourneysFileError, load_journeys, parse_journeys
from pipeline.worker.convert import dispatch_record
from tests.unit.journeys.scenario import T0, Scenario, app, parcel, placed, prefs

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def _two_orders_delivered(gap: timedelta) -> Scenario:
    run = Scenario()
    run.feed(prefs())
    run.feed(placed("o1"))
    run.feed(placed("o2", at=T0 + HOUR))
    run.feed(parcel("DELIVERED", T0 + DAY, order="o1", shipment="s1"))
    run.feed(parcel("DELIVERED", T0 + DAY + gap, order="o2", shipment="s2"))
    return run


def _asks(run: Scenario) -> list[tuple[object, SendTouchpoint]]:
    return [
        (at, c)
        for at, c in run.log
        if isinstance(c, SendTouchpoint) and c.touchpoint.journey == "feedback_request"
    ]


def test_the_default_feedback_request_is_a_one_day_digest() -> None:
    (ask,) = load_journeys().journey("feedback_request").steps  # type: ignore[union-attr]
    assert ask.digest == Digest(DAY, "customer")


def test_two_orders_delivered_hours_apart_get_one_feedback_request_listing_both() -> None:
    run = _two_orders_delivered(6 * HOUR)
    run.advance(20 * DAY)
    ((at, ask),) = _asks(run)
    assert ask.touchpoint.order_id == "o1"  # the first due carries the rest
    assert [m.order_id for m in ask.members] == ["o2"]
    assert at == ask.touchpoint.due_at + DAY  # at the end of the first one's window
    (folded,) = [c for _, c in run.log if isinstance(c, CancelTouchpoint) and c.reason == "digest"]
    assert folded.touchpoint.order_id == "o2"
    assert folded.detail == f"sent with {ask.touchpoint.touchpoint_id}"
    record = dispatch_record(ask, T0)
    assert [m["order_id"] for m in record["digest"]] == ["o2"]
    assert record["digest"][0]["context"]["items"][0]["sku"] == "CM-900"


def test_orders_delivered_further_apart_than_the_window_get_one_request_each() -> None:
    run = _two_orders_delivered(2 * DAY)
    run.advance(20 * DAY)
    asks = _asks(run)
    assert [(a.touchpoint.order_id, a.members) for _, a in asks] == [("o1", ()), ("o2", ())]


def test_a_member_that_no_longer_holds_drops_out_and_the_rest_still_goes() -> None:
    run = _two_orders_delivered(6 * HOUR)
    run.advance(14 * DAY + 12 * HOUR)  # both held in the window now
    run.feed(app("FEEDBACK_SUBMITTED", run.now - HOUR, order_id="o1", rating=5))
    run.advance(5 * DAY)
    ((_, ask),) = _asks(run)
    assert (ask.touchpoint.order_id, ask.members) == ("o2", ())
    assert ("feedback_request", "SUPPRESSED", "condition:no_feedback_yet") in run.cancelled()


def test_one_digest_counts_once_against_the_caps() -> None:
    run = _two_orders_delivered(6 * HOUR)
    run.advance(20 * DAY)
    ((at, _),) = _asks(run)
    assert run.state is not None
    assert run.state.engagement_sends.count(at) == 1  # type: ignore[arg-type]


def test_the_same_events_give_the_same_digest_ids() -> None:
    first, second = _two_orders_delivered(6 * HOUR), _two_orders_delivered(6 * HOUR)
    first.advance(20 * DAY)
    second.advance(20 * DAY)
    assert [a.touchpoint.touchpoint_id for _, a in _asks(first)] == [
        a.touchpoint.touchpoint_id for _, a in _asks(second)
    ]


def test_an_out_for_delivery_alert_still_waiting_when_the_parcel_arrives_is_replaced() -> None:
    run = Scenario()
    night = T0.replace(hour=4) + DAY  # 05:00 in Berlin: the WhatsApp alert waits until 08:00
    run.feed(prefs(whatsapp=True))
    run.feed(placed())
    run.feed(parcel("OUT_FOR_DELIVERY", night))
    run.feed(parcel("DELIVERED", night + HOUR))
    run.advance(DAY)
    sent = [s.journey for s in run.sent()]
    assert "out_for_delivery" not in sent
    assert "delivered" in sent
    assert ("out_for_delivery", "SUPPRESSED", "superseded:DELIVERED") in run.cancelled()


FILE = """
version: 1
journeys:
  ask:
    priority: engagement
    trigger: DELIVERED
    steps:
      - {name: once, delay: 1d, channels: [email], validity: 2d, digest: {window: 12h}}
"""


def test_the_journeys_file_reads_a_digest() -> None:
    (journey,) = parse_journeys(FILE).journeys
    assert journey.steps[0].digest == Digest(12 * HOUR, "customer")
    keyed = parse_journeys(FILE.replace("{window: 12h}", "{window: 12h, key: order}"))
    assert keyed.journeys[0].steps[0].digest == Digest(12 * HOUR, "order")


@pytest.mark.parametrize(
    ("digest", "message"),
    [
        ("{window: 2d}", "must be shorter than the step's validity"),
        ("{window: 0s}", "longer than 0"),
        ("{key: customer}", "needs `window:`"),
        ("{window: 2h, key: parcel}", "digest key 'parcel' is not known"),
        ("{window: 2h, every: 1}", "unknown key 'every'"),
    ],
)
def test_a_wrong_digest_is_refused_with_its_line(digest: str, message: str) -> None:
    with pytest.raises(JourneysFileError) as caught:
        parse_journeys(FILE.replace("{window: 12h}", digest), "j.yaml")
    assert caught.value.line == 8
    assert message in str(caught.value)


def test_what_comes_due_in_one_late_pass_goes_together() -> None:
    # The worker was away: both requests are first seen after both windows ended.
    from pipeline.journeys.model import Wake
    from tests.unit.journeys.scenario import CUSTOMER

    run = _two_orders_delivered(20 * HOUR)
    run.advance(12 * DAY)  # nothing of feedback_request due yet
    run.now = T0 + 16 * DAY + 2 * HOUR  # after the first one's window, within both validities
    run._decide(Wake(CUSTOMER, run.now))
    ((_, ask),) = _asks(run)
    assert [m.order_id for m in ask.members] == ["o2"]
    assert ("feedback_request", "SUPPRESSED", "frequency_cap") not in run.cancelled()
    assert ("feedback_request", "SUPPRESSED", "digest") in run.cancelled()
