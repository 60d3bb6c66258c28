"""A bad journeys file is refused at start with the file, the line and what to change."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.codec import SchemaSet
from pipeline.journeys.conditions import CONDITIONS
from pipeline.journeys.kinds import APP_KINDS, PURCHASE_KINDS, SHIPMENT_KINDS
from pipeline.journeys.model import Channel, CustomerState, Priority
from pipeline.journeysfile import DEFAULT_JOURNEYS, JourneysFileError, load_journeys, parse_journeys
from pipeline.names import RECORD_OF_TOPIC, TopicRole

GOOD = """\
version: 1
journeys:
  order_confirmation:
    priority: transactional
    trigger: ORDER_PLACED
    steps:
      - {name: confirm, channels: [email], validity: 24h}
"""


def _error(text: str) -> JourneysFileError:
    with pytest.raises(JourneysFileError) as caught:
        parse_journeys(textwrap.dedent(text), "shop/journeys.yaml")
    return caught.value


def test_the_default_file_holds_every_journey_of_the_design() -> None:
    book = load_journeys()
    assert {j.name for j in book.journeys} >= {
        "order_confirmation",
        "payment_failed",
        "shipped",
        "out_for_delivery",
        "delivered",
        "delay_notice",
        "not_shipped_watchdog",
        "cancellation",
        "refund",
        "product_education",
        "need_help",
        "feedback_request",
        "support_handoff",
        "review_request",
        "cross_sell",
        "reengagement",
    }
    assert book.source == str(DEFAULT_JOURNEYS)


def test_operators_change_timings_and_switch_journeys_off_without_code() -> None:
    text = """\
version: 1
journeys:
  order_confirmation:
    priority: transactional
    trigger: ORDER_PLACED
    steps:
      - {name: confirm, delay: 1h30m, channels: [email], validity: 2d}
  cross_sell:
    enabled: false
    priority: marketing
    trigger: DELIVERED
    steps:
      - {name: offer, delay: 30d, channels: [email], validity: 3d}
"""
    book = parse_journeys(text)
    assert [j.name for j in book.journeys] == ["order_confirmation"]
    assert book.journeys[0].steps[0].delay == timedelta(minutes=90)
    assert book.journeys[0].steps[0].validity == timedelta(days=2)


@pytest.mark.parametrize(
    ("change", "line", "words"),
    [
        (("validity: 24h}", "validity: soon}"), 7, "validity 'soon' is not a duration"),
        (("trigger: ORDER_PLACED", "trigger: ORDER_PLACE"), 5, "did you mean 'ORDER_PLACED'?"),
        (("channels: [email]", "channels: [fax]"), 7, "channel 'fax' is not known"),
        (("priority: transactional", "priorty: transactional"), 4, "did you mean 'priority'?"),
        (("priority: transactional", "priority: urgent"), 4, "priority 'urgent' is not known"),
        (("{name: confirm,", "{name: Confirm,"), 7, "use lower_case_with_underscores"),
        (("channels: [email]", "channels: []"), 7, "list at least one channel"),
        (("channels: [email]", "channels: [email, email]"), 7, "a channel is listed twice"),
        (("trigger: ORDER_PLACED", "trigger: ORDER_PLACED\n    exit_on: [LOST]"), 6, "exit_on"),
        (("    steps:\n", "    conditions: [sunny]\n    steps:\n"), 6, "condition 'sunny'"),
        (
            ("    steps:\n", "    conditions: [{rating_at_most: 9}]\n    steps:\n"),
            6,
            "takes a rating from 1 to 5",
        ),
        (("version: 1", "version: 2"), 1, "version must be 1"),
        (("  order_confirmation:\n", "  order_confirmation:\n    quiet_for: 3d\n"), 4, "quiet_for"),
    ],
)
def test_mistakes_name_the_file_and_line(change: tuple[str, str], line: int, words: str) -> None:
    error = _error(GOOD.replace(*change))
    assert str(error).startswith(f"shop/journeys.yaml:{line}: ")
    assert words in str(error)


def test_broken_yaml_names_the_line() -> None:
    error = _error(GOOD.replace("steps:", "steps: [", 1))
    assert str(error).startswith("shop/journeys.yaml:")
    assert error.line is not None
    assert "not valid YAML" in str(error)


def test_a_key_given_twice_is_refused() -> None:
    error = _error(
        GOOD.replace(
            "    trigger: ORDER_PLACED\n", "    trigger: ORDER_PLACED\n    trigger: SHIPPED\n"
        )
    )
    assert str(error) == "shop/journeys.yaml:6: 'trigger' is given twice"


def test_a_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JourneysFileError, match="cannot read it"):
        load_journeys(tmp_path / "nope.yaml")


def test_two_app_quiet_journeys_are_refused() -> None:
    quiet = """\
  quiet_{n}:
    priority: engagement
    trigger: APP_QUIET
    quiet_for: 14d
    steps:
      - {{name: push, channels: [push], validity: 1d}}
"""
    error = _error(GOOD + quiet.format(n=1) + quiet.format(n=2))
    assert "only one journey may have trigger APP_QUIET" in str(error)


@pytest.mark.parametrize(
    ("role", "kinds"),
    [
        (TopicRole.PURCHASES, PURCHASE_KINDS),
        (TopicRole.SHIPMENTS, SHIPMENT_KINDS),
        (TopicRole.APP_USAGE, APP_KINDS),
    ],
)
def test_trigger_names_are_the_schema_event_types(role: TopicRole, kinds: tuple[str, ...]) -> None:
    parsed = SchemaSet.load().current(RECORD_OF_TOPIC[role]).parsed
    (kind_field,) = [f for f in parsed["fields"] if f["name"] == "type"]
    assert tuple(kind_field["type"]["symbols"]) == kinds


def test_which_channels_wait_out_quiet_hours_is_read_per_priority() -> None:
    book = parse_journeys(
        GOOD.replace(
            "version: 1\n",
            "version: 1\ndefaults:\n  quiet_hours_hold:\n    engagement: [push]\n",
        )
    )
    assert book.quiet_channels[Priority.ENGAGEMENT] == frozenset({Channel.PUSH})
    # A priority not listed keeps the design's default: transactional email is never held.
    assert book.quiet_channels[Priority.TRANSACTIONAL] == frozenset(
        {Channel.SMS, Channel.WHATSAPP, Channel.PUSH}
    )
    assert Channel.EMAIL in load_journeys().quiet_channels[Priority.MARKETING]


def test_in_app_cannot_be_held_by_quiet_hours() -> None:
    error = _error(
        GOOD.replace(
            "version: 1\n",
            "version: 1\ndefaults:\n  quiet_hours_hold:\n    engagement: [email, in_app]\n",
        )
    )
    assert str(error).startswith("shop/journeys.yaml:4: quiet_hours_hold.engagement: in_app")


@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_the_reader_takes_every_registered_condition_and_the_engine_evaluates_it(
    name: str,
) -> None:
    rule = CONDITIONS[name]
    written = f"{{{name}: 2}}" if rule.takes_rating else name
    book = parse_journeys(
        GOOD.replace("validity: 24h}", f"validity: 24h, conditions: [{written}]}}")
    )
    (condition,) = book.journeys[0].steps[0].conditions
    assert (condition.name, condition.value) == (name, 2 if rule.takes_rating else None)
    state = CustomerState("c1")
    assert isinstance(rule.check(state, None, datetime(2026, 1, 1, tzinfo=UTC), 2, 2), bool)
    if rule.takes_rating:
        assert "takes a rating" in str(_error(GOOD.replace("24h}", f"24h, conditions: [{name}]}}")))
    else:
        assert "takes no value" in str(
            _error(GOOD.replace("24h}", f"24h, conditions: [{{{name}: 2}}]}}"))
        )


def test_a_condition_not_registered_is_refused_with_the_closest_name() -> None:
    error = _error(GOOD.replace("24h}", "24h, conditions: [not_shiped]}"))
    assert "condition 'not_shiped' is not known; did you mean 'not_shipped'?" in str(error)
