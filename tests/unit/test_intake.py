"""The intake never raises and never loses a record: it admits it or says why in a dead letter."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.codec import DeadLetterError, SchemaSet
from pipeline.intake import DEAD_LETTER, Admitted, DeadLetter, SourceRecord, Tombstone, admit
from pipeline.names import INPUT_ROLES, TopicRole
from tests.samples import FULL_NAMES, SAMPLES, T0

NOW = T0 + timedelta(days=10)
MAX_FUTURE = timedelta(hours=24)
SCHEMAS = SchemaSet.load()
PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

roles = st.sampled_from(INPUT_ROLES)
keys = st.one_of(st.none(), st.binary(max_size=40), st.text(max_size=20).map(str.encode))
headers = st.lists(
    st.tuples(st.text(max_size=10), st.one_of(st.none(), st.binary(max_size=10))), max_size=3
)


def _source(role: TopicRole, key: bytes | None, value: bytes | None, **kw: Any) -> SourceRecord:
    return SourceRecord(role.value, 2, 1234, key, value, 1_700_000_000_000, **kw)


def _admit(source: SourceRecord, role: TopicRole) -> Admitted | Tombstone | DeadLetter:
    return admit(SCHEMAS, role, source, now=NOW, max_future=MAX_FUTURE)


def _valid(role: TopicRole) -> bytes:
    return SCHEMAS.encode(FULL_NAMES[role], SAMPLES[role]())


def _assert_is_a_complete_dead_letter(verdict: Any, source: SourceRecord) -> DeadLetter:
    assert isinstance(verdict, DeadLetter)
    assert verdict.reason.strip()
    # The dead letter itself is always publishable, and keeps the original bytes intact.
    stored = SCHEMAS.decode(SCHEMAS.encode(DEAD_LETTER, verdict.to_record()), DEAD_LETTER).record
    assert stored["key"] == source.key
    assert stored["value"] == source.value
    assert stored["source_topic"] == source.topic
    assert (stored["source_partition"], stored["source_offset"]) == (2, 1234)
    assert stored["event_id"] == f"{source.topic}:2:1234"
    assert stored["headers"] == [{"key": k, "value": v} for k, v in source.headers]
    return verdict


@PROPERTIES
@given(role=roles, key=keys, value=st.binary(max_size=300), headers=headers)
@example(role=TopicRole.PURCHASES, key=b"cust-1", value=b"\xc3\x01", headers=[])
def test_random_bytes_become_dead_letters(
    role: TopicRole, key: bytes | None, value: bytes, headers: list[Any]
) -> None:
    source = _source(role, key, value, headers=headers)
    _assert_is_a_complete_dead_letter(_admit(source, role), source)


@PROPERTIES
@given(role=roles, data=st.data())
def test_truncated_records_become_dead_letters(role: TopicRole, data: st.DataObject) -> None:
    valid = _valid(role)
    cut = data.draw(st.integers(min_value=0, max_value=len(valid) - 1))
    source = _source(role, b"cust-1", valid[:cut])
    verdict = _assert_is_a_complete_dead_letter(_admit(source, role), source)
    assert verdict.error in (DeadLetterError.NOT_AVRO, DeadLetterError.UNDECODABLE)


@PROPERTIES
@given(role=roles, fingerprint=st.binary(min_size=8, max_size=8))
def test_wrong_fingerprints_become_dead_letters(role: TopicRole, fingerprint: bytes) -> None:
    valid = _valid(role)
    source = _source(role, b"cust-1", valid[:2] + fingerprint + valid[10:])
    verdict = _admit(source, role)
    if fingerprint == valid[2:10]:
        assert isinstance(verdict, Admitted)
        return
    verdict = _assert_is_a_complete_dead_letter(verdict, source)
    assert verdict.error in (DeadLetterError.UNKNOWN_SCHEMA, DeadLetterError.WRONG_TOPIC)
    assert verdict.fingerprint == fingerprint.hex()


@PROPERTIES
@given(role=roles, key=keys)
def test_wrong_keys_become_dead_letters(role: TopicRole, key: bytes | None) -> None:
    source = _source(role, key, _valid(role))
    verdict = _admit(source, role)
    if key == b"cust-1":
        assert isinstance(verdict, Admitted)
        return
    verdict = _assert_is_a_complete_dead_letter(verdict, source)
    assert verdict.error is DeadLetterError.KEY_MISMATCH
    assert "customer_id" in verdict.reason


@PROPERTIES
@given(role=roles, position=st.integers(min_value=10), flip=st.integers(min_value=1, max_value=255))
def test_corrupted_bodies_are_admitted_or_dead_lettered_never_raised(
    role: TopicRole, position: int, flip: int
) -> None:
    valid = bytearray(_valid(role))
    valid[position % len(valid)] ^= flip
    source = _source(role, b"cust-1", bytes(valid))
    verdict = _admit(source, role)
    if isinstance(verdict, DeadLetter):
        _assert_is_a_complete_dead_letter(verdict, source)


@pytest.mark.parametrize("role", INPUT_ROLES)
def test_a_valid_event_is_admitted_as_decoded(role: TopicRole) -> None:
    verdict = _admit(_source(role, b"cust-1", _valid(role)), role)
    assert isinstance(verdict, Admitted)
    assert verdict.role is role
    assert verdict.record == SAMPLES[role]()


def test_a_tombstone_on_preferences_means_forget_the_customer() -> None:
    source = _source(TopicRole.PREFERENCES, b"cust-1", None)
    assert _admit(source, TopicRole.PREFERENCES) == Tombstone("cust-1", source)


@pytest.mark.parametrize("role", [TopicRole.PURCHASES, TopicRole.PREFERENCES])
def test_a_tombstone_without_a_usable_key_is_dead_lettered(role: TopicRole) -> None:
    source = _source(role, None if role is TopicRole.PREFERENCES else b"cust-1", None)
    _assert_is_a_complete_dead_letter(_admit(source, role), source)


def test_an_unexpected_error_is_dead_lettered_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("pipeline.intake.problems", explode)
    source = _source(TopicRole.PURCHASES, b"cust-1", _valid(TopicRole.PURCHASES))
    verdict = _assert_is_a_complete_dead_letter(_admit(source, TopicRole.PURCHASES), source)
    assert verdict.error is DeadLetterError.UNPROCESSABLE
    assert "unexpected RuntimeError while decoding: boom" in verdict.reason
