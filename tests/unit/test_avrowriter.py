"""The compiled Avro writer writes fastavro's bytes, or leaves the record to fastavro."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import avrowriter
from pipeline.codec import EncodeError, Schema, SchemaSet

SCHEMAS = SchemaSet.load()
NAMES = SCHEMAS.names

LONGS = st.one_of(
    st.integers(-100, 100), st.integers(-(2**63), 2**63 - 1), st.sampled_from([63, 64, 127, 128])
)
# Lengths either side of where a length stops fitting one byte (64), in bytes, not characters.
EDGE_STRINGS = ["x" * 63, "x" * 64, "x" * 65, "ü" * 32, "ü" * 31 + "x", "€" * 43, "x" * 9000]
EDGE_BYTES = [b"x" * 63, b"x" * 64, b"x" * 65, b""]
TIMES = st.one_of(
    st.datetimes(
        min_value=datetime(1900, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=datetime(2200, 1, 1),  # noqa: DTZ001
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    ),
    st.integers(-(2**50), 2**50),
)


def _named(parsed: Any, found: dict[str, Any]) -> None:
    """Every named type's definition in ``parsed``, by full name (later uses are names)."""
    if isinstance(parsed, list):
        for branch in parsed:
            _named(branch, found)
    elif isinstance(parsed, dict):
        if parsed.get("type") in ("record", "enum") and "name" in parsed:
            found.setdefault(parsed["name"], parsed)
        for field in parsed.get("fields", ()):
            _named(field["type"], found)
        for key in ("items", "values"):
            if key in parsed:
                _named(parsed[key], found)


def values(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Any value fastavro writes for ``schema``."""
    if isinstance(schema, str):
        if schema in named:
            return values(named[schema], named)
        return {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.integers(-(2**31), 2**31 - 1),
            "long": LONGS,
            "float": st.floats(width=32, allow_nan=False),
            "double": st.floats(allow_nan=False),
            "string": st.one_of(st.text(max_size=80), st.sampled_from(EDGE_STRINGS)),
            "bytes": st.one_of(st.binary(max_size=80), st.sampled_from(EDGE_BYTES)),
        }[schema]
    if isinstance(schema, list):
        return st.one_of(*(values(branch, named) for branch in schema))
    if schema.get("logicalType") == "timestamp-millis":
        return TIMES
    kind = schema["type"]
    if kind == "record":
        required = {f["name"]: values(f["type"], named) for f in schema["fields"]}
        optional = {f["name"]: values(f["type"], named) for f in schema["fields"] if "default" in f}
        for name in optional:
            del required[name]
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(values(schema["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=10), values(schema["values"], named), max_size=3)
    return values(kind, named)


def fastavro_bytes(schema: Schema, record: Any) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema.parsed, record, strict_allow_default=False)
    return buffer.getvalue()


def compiled_bytes(schema: Schema, record: Any) -> bytes:
    assert schema.writer is not None
    out = bytearray()
    schema.writer(out, record)
    return bytes(out)


def test_every_schema_is_compiled() -> None:
    assert all(SCHEMAS.current(name).writer is not None for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_compiled_writer_writes_fastavros_bytes(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS.current(name)
    named: dict[str, Any] = {}
    _named(schema.parsed, named)
    record = data.draw(values(schema.parsed, named))
    assert compiled_bytes(schema, record) == fastavro_bytes(schema, record)


class Color(StrEnum):
    RED = "RED"


@pytest.mark.parametrize(
    "changes",
    [
        {"occurred_at": datetime(2026, 1, 1)},  # noqa: DTZ001 - naive, read in the local zone
        {"occurred_at": 1.5},
        {"customer_id": b"bytes"},
        {"customer_id": Color.RED},  # a str subclass: left to fastavro
        {"customer_id": None},
        {"event_id": 7},
    ],
)
def test_a_value_of_another_type_is_left_to_fastavro(changes: dict[str, Any]) -> None:
    name = "io.aftercare.v1.DueNotice"
    record = {"event_id": "e", "customer_id": "c", "occurred_at": datetime(2026, 1, 1, tzinfo=UTC)}
    record.update(changes)
    schema = SCHEMAS.current(name)
    with pytest.raises(avrowriter.Unsupported):
        compiled_bytes(schema, record)
    try:
        expected: bytes | None = schema.header + fastavro_bytes(schema, record)
    except Exception:
        expected = None
    if expected is None:
        with pytest.raises(EncodeError):
            SCHEMAS.encode(name, record, strict=False)
    else:
        assert SCHEMAS.encode(name, record, strict=False) == expected


def test_a_missing_field_without_a_default_is_left_to_fastavro() -> None:
    schema = SCHEMAS.current("io.aftercare.v1.DueNotice")
    with pytest.raises(avrowriter.Unsupported):
        compiled_bytes(schema, {"event_id": "e", "customer_id": "c"})


def test_a_union_of_two_types_is_not_compiled() -> None:
    parsed = fastavro.parse_schema(
        {"type": "record", "name": "X", "fields": [{"name": "a", "type": ["int", "string"]}]}
    )
    with pytest.raises(avrowriter.Unsupported):
        avrowriter.compile_writer(parsed)


def test_the_workers_own_records_are_all_written_by_the_compiled_writer() -> None:
    # The speed is only there if the worker's commands never fall back to fastavro.
    from datetime import timedelta as span

    from pipeline.journeys.model import CancelTouchpoint, SendTouchpoint
    from pipeline.worker.convert import dispatch_record, outcome_record
    from tests.unit.journeys.scenario import T0, Scenario, parcel, placed, prefs

    run = Scenario()
    run.feed(prefs())
    run.feed(placed("o1"))
    run.feed(placed("o2", at=T0 + span(hours=1)))
    run.feed(parcel("DELIVERED", T0 + span(days=1), order="o1", shipment="s1"))
    run.feed(parcel("DELIVERED", T0 + span(days=1, hours=6), order="o2", shipment="s2"))
    run.advance(span(days=40))
    sends = [c for _, c in run.log if isinstance(c, SendTouchpoint)]
    ends = [c for _, c in run.log if isinstance(c, CancelTouchpoint)]
    assert len(sends) >= 5
    assert ends
    assert any(s.members for s in sends)
    for name, record in [
        *(("io.aftercare.v1.TouchpointCommand", dispatch_record(s, T0)) for s in sends),
        *(("io.aftercare.v1.DeliveryOutcome", outcome_record(c, T0)) for c in ends),
    ]:
        schema = SCHEMAS.current(name)
        assert compiled_bytes(schema, record) == fastavro_bytes(schema, record)
