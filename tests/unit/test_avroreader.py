"""The compiled Avro reader reads what fastavro reads, or leaves the record to fastavro.

(Records of older schema versions are read by fastavro, with resolution: test_codec.py holds
every version in schemas/history/ to that.)"""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import avroreader
from pipeline.codec import HEADER_SIZE, DecodeError, Schema
from tests.unit.test_avrowriter import NAMES, SCHEMAS, _named, values


def fastavro_read(schema: Schema, data: bytes) -> tuple[Any, int]:
    body = io.BytesIO(data)
    body.seek(HEADER_SIZE)
    return fastavro.schemaless_reader(body, schema.parsed, None), body.tell()


def _record(schema: Schema, data: st.DataObject) -> bytes:
    named: dict[str, Any] = {}
    _named(schema.parsed, named)
    return SCHEMAS.encode(schema.full_name, data.draw(values(schema.parsed, named)))


def test_every_schema_is_compiled() -> None:
    assert all(SCHEMAS.current(name).reader is not None for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_compiled_reader_reads_what_fastavro_reads(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS.current(name)
    encoded = _record(schema, data)
    assert schema.reader is not None
    try:
        theirs = fastavro_read(schema, encoded)
    except (OverflowError, ValueError):  # a time outside what datetime holds
        with pytest.raises(avroreader.Unsupported):
            schema.reader(encoded, HEADER_SIZE)
        return
    record, end = schema.reader(encoded, HEADER_SIZE)
    assert (record, end) == theirs
    assert end == len(encoded)
    assert [type(v) for v in record.values()] == [type(v) for v in theirs[0].values()]


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_damaged_record_is_read_as_fastavro_reads_it_or_left_to_it(
    name: str, data: st.DataObject
) -> None:
    schema = SCHEMAS.current(name)
    encoded = bytearray(_record(schema, data))
    if data.draw(st.booleans()):
        del encoded[data.draw(st.integers(HEADER_SIZE, len(encoded))) :]  # cut short
    else:
        at = data.draw(st.integers(HEADER_SIZE, len(encoded) - 1))
        encoded[at] = data.draw(st.integers(0, 255))  # one byte changed
    damaged = bytes(encoded)
    assert schema.reader is not None
    try:
        ours: tuple[Any, int] | None = schema.reader(damaged, HEADER_SIZE)
    except avroreader.Unsupported:
        ours = None
    try:
        theirs: tuple[Any, int] | None = fastavro_read(schema, damaged)
    except Exception:
        theirs = None
    if ours is not None:
        assert ours == theirs  # what it reads, fastavro reads the same
    # And through the codec, the verdict is fastavro's either way.
    try:
        decoded: Any = SCHEMAS.decode(damaged, name).record
    except DecodeError as exc:
        decoded = exc.reason
    if theirs is None:
        assert ours is None
        assert isinstance(decoded, str)  # a dead-letter reason, not a record
    elif theirs[1] == len(damaged):
        assert decoded == theirs[0]
