"""Journey state survives the trip to the table and back, field for field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from pipeline.journeys.model import Consent, CustomerState, Preferences
from pipeline.worker.statecodec import (
    _CURRENT,
    VERSION,
    StateDecodeError,
    _decode_planned,
    decode_state,
    encode_state,
)
from tests.unit.journeys.scenario import T0, Scenario, app, parcel, placed, prefs
from tests.unit.journeys.test_properties import _run, deliveries


def _lived() -> CustomerState:
    run = Scenario()
    run.feed(prefs(email=False, sms=True, quiet=(22 * 60, 7 * 60), marketing=True))
    run.feed(placed())
    run.feed(parcel("DELIVERED", T0 + timedelta(days=1), eta=T0 + timedelta(days=2)))
    run.feed(app("PUSH_TOKEN_REGISTERED", T0, push_token="tok"))
    assert run.state is not None
    assert run.state.pending
    return run.state


def test_a_lived_state_round_trips() -> None:
    state = _lived()
    assert decode_state(encode_state(state)) == state


def test_a_table_written_by_the_first_release_still_reads() -> None:
    # Both files hold one lived state: version 1 (defaults left out, UTC milliseconds) as the
    # first release wrote it, and the current version.
    here = Path(__file__).parent
    first, current = (here / "state-v1.json").read_bytes(), (here / "state-v2.json").read_bytes()
    assert first.startswith(b'{"v":1,')
    assert current.startswith(b'{"v":2,')
    state = decode_state(first)
    assert state.pending
    assert state.orders
    assert state == decode_state(current)


def test_a_missing_required_field_is_a_clear_error() -> None:
    with pytest.raises(StateDecodeError, match="customer_id"):
        decode_state(b'{"v":2,"s":{"orders":[]}}')


def test_an_opt_out_is_never_turned_back_into_consent() -> None:
    # Consent(email=True) is the default; an explicit False must survive being left out or not.
    state = CustomerState("c1", preferences=Preferences(consent=Consent(email=False, in_app=False)))
    assert decode_state(encode_state(state)).preferences.consent == Consent(
        email=False, in_app=False
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_any_state_the_engine_reaches_round_trips(arrivals: list) -> None:  # type: ignore[type-arg]
    commands, final = _run(arrivals)
    assert decode_state(encode_state(final)) == final
    for _, state in commands:
        assert decode_state(encode_state(state)) == state


@pytest.mark.parametrize("data", [b"not json", b'{"v": 99, "s": {}}', b"[]"])
def test_unreadable_state_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(StateDecodeError):
        decode_state(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_the_quick_reading_and_the_planned_one_give_the_same_state(arrivals: list) -> None:  # type: ignore[type-arg]
    _, final = _run(arrivals)
    data = encode_state(final)
    assert _CURRENT.decode(data).s == _decode_planned(data) == final


def test_a_value_the_quick_reading_refuses_is_read_by_the_plan() -> None:
    # The current version with an integer written as 2.0 (a hand-edited or foreign writer):
    # msgspec's typed reading refuses it; the planned reading takes it as it always did.
    state = _lived()
    data = encode_state(state).replace(b'"quantity":1', b'"quantity":1.0', 1)
    assert b'"quantity":1.0' in data
    with pytest.raises(msgspec.ValidationError):
        _CURRENT.decode(data)
    assert decode_state(data).orders == state.orders


def test_the_quick_reading_is_of_the_version_written() -> None:
    # Bumping VERSION without _Current would send every state the slow way, silently.
    assert _CURRENT.decode(encode_state(_lived())).v == VERSION
