"""The core's copy helper behaves as ``dataclasses.replace`` does."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from pipeline.journeys.model import Channel, Consent, Contact, CustomerState, evolve


def test_evolve_is_replace() -> None:
    state = CustomerState("c-1", contact=Contact(email="a@example.com"))
    at = datetime(2026, 1, 1, tzinfo=UTC)
    changed = evolve(state, last_app_activity=at, reengaged_for=at)
    assert changed == dataclasses.replace(state, last_app_activity=at, reengaged_for=at)
    assert state.last_app_activity is None  # the original is left as it was
    assert evolve(state) == state
    assert evolve(state) is not state


def test_evolve_refuses_a_field_the_class_does_not_have() -> None:
    state = CustomerState("c-1")
    with pytest.raises(TypeError, match="CustomerState has no field colour"):
        evolve(state, colour="blue")
    with pytest.raises(TypeError, match="has no field colour, size"):
        evolve(state, size=1, colour="blue", reengaged_for=None)


@pytest.mark.parametrize("channel", list(Channel))
def test_consent_reads_the_field_of_each_channel(channel: Channel) -> None:
    if channel is Channel.WEBHOOK:
        assert Consent(email=False, in_app=False).allows(channel)
        return
    field = channel.value.lower()
    assert Consent(**{field: True}).allows(channel)
    assert not Consent(**{field: False}).allows(channel)
