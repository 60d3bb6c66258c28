"""Single-object encoding: layout, round trips, interoperability with the reference library."""

from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import fastavro.utils
import pytest

from pipeline.codec import (
    HEADER_SIZE,
    MARKER,
    CodecError,
    DeadLetterError,
    DecodeError,
    EncodeError,
    SchemaSet,
    peek_occurred_at,
)
from pipeline.names import COPARTITIONED_ROLES, RECORD_OF_TOPIC, TopicRole
from pipeline.resources import schemas_dir
from tests.samples import FULL_NAMES, SAMPLES

ROLES = list(SAMPLES)


def _reference_schema(schemas: SchemaSet, role: TopicRole) -> avro.schema.Schema:
    return avro.schema.parse(schemas.current(FULL_NAMES[role]).path.read_text())


@pytest.mark.parametrize("role", ROLES)
def test_round_trip_of_every_schema(schemas: SchemaSet, role: TopicRole) -> None:
    record = SAMPLES[role]()
    data = schemas.encode(FULL_NAMES[role], record)
    assert schemas.decode(data, FULL_NAMES[role]).record == record


@pytest.mark.parametrize("role", ROLES)
def test_wire_layout_is_marker_fingerprint_body(schemas: SchemaSet, role: TopicRole) -> None:
    schema = schemas.current(FULL_NAMES[role])
    data = schemas.encode(FULL_NAMES[role], SAMPLES[role]())
    assert data[:2] == MARKER == b"\xc3\x01"
    assert data[2:HEADER_SIZE] == schema.fingerprint
    assert len(schema.fingerprint) == 8


@pytest.mark.parametrize("role", ROLES)
def test_fingerprint_agrees_with_the_reference_implementation(
    schemas: SchemaSet, role: TopicRole
) -> None:
    # The reference Python implementation keeps {"type":"long"} for logical types in its canonical
    # form (see pipeline.codec), so it is given the spec's canonical form, which has none left.
    schema = schemas.current(FULL_NAMES[role])
    canonical = fastavro.schema.to_parsing_canonical_form(schema.parsed)
    assert "logicalType" not in canonical
    assert avro.schema.parse(canonical).fingerprint("CRC-64-AVRO") == schema.fingerprint


@pytest.mark.parametrize("role", ROLES)
def test_reference_implementation_reads_what_we_write(schemas: SchemaSet, role: TopicRole) -> None:
    record = SAMPLES[role]()
    data = schemas.encode(FULL_NAMES[role], record)
    reference = _reference_schema(schemas, role)
    decoder = avro.io.BinaryDecoder(io.BytesIO(data[HEADER_SIZE:]))
    assert avro.io.DatumReader(reference, reference).read(decoder) == record


@pytest.mark.parametrize("role", ROLES)
def test_we_read_what_the_reference_implementation_writes(
    schemas: SchemaSet, role: TopicRole
) -> None:
    record = SAMPLES[role]()
    reference = _reference_schema(schemas, role)
    body = io.BytesIO()
    avro.io.DatumWriter(reference).write(record, avro.io.BinaryEncoder(body))
    data = MARKER + schemas.current(FULL_NAMES[role]).fingerprint + body.getvalue()
    assert data == schemas.encode(FULL_NAMES[role], record)
    assert schemas.decode(data, FULL_NAMES[role]).record == record


@pytest.mark.parametrize("role", ROLES)
def test_random_records_of_every_schema_survive_a_round_trip(
    schemas: SchemaSet, role: TopicRole
) -> None:
    schema = schemas.current(FULL_NAMES[role])
    for record in fastavro.utils.generate_many(schema.parsed, 50):
        data = schemas.encode(FULL_NAMES[role], record)
        decoded = schemas.decode(data, FULL_NAMES[role]).record
        assert schemas.encode(FULL_NAMES[role], decoded) == data


def test_a_record_that_does_not_fit_is_an_encode_error(schemas: SchemaSet) -> None:
    full_name = FULL_NAMES[TopicRole.PURCHASES]
    with pytest.raises(EncodeError, match="PurchaseEvent"):
        schemas.encode(full_name, SAMPLES[TopicRole.PURCHASES](type="ORDER_LOST"))
    with pytest.raises(EncodeError):
        schemas.encode(full_name, SAMPLES[TopicRole.PURCHASES](surprise="field"))


@pytest.mark.parametrize(
    ("mangle", "kind", "words"),
    [
        (lambda d: b"", DeadLetterError.NOT_AVRO, "empty"),
        (lambda d: d[:5], DeadLetterError.NOT_AVRO, "shorter than the 10-byte"),
        (lambda d: b'{"event_id": 1}', DeadLetterError.NOT_AVRO, "looks like JSON"),
        (lambda d: b"\x00\x00\x00\x00\x07" + d[10:], DeadLetterError.NOT_AVRO, "Confluent"),
        (
            lambda d: d[:2] + b"\x01" * 8 + d[10:],
            DeadLetterError.UNKNOWN_SCHEMA,
            "0101010101010101",
        ),
        (lambda d: d[: len(d) // 2], DeadLetterError.UNDECODABLE, "does not decode"),
        (lambda d: d + b"\x00", DeadLetterError.UNDECODABLE, "1 bytes left over"),
    ],
)
def test_undecodable_input_says_why(
    schemas: SchemaSet, mangle: Any, kind: DeadLetterError, words: str
) -> None:
    full_name = FULL_NAMES[TopicRole.PURCHASES]
    data = schemas.encode(full_name, SAMPLES[TopicRole.PURCHASES]())
    with pytest.raises(DecodeError) as caught:
        schemas.decode(mangle(data), full_name)
    assert caught.value.kind is kind
    assert words in caught.value.reason


def test_a_known_record_on_the_wrong_topic_is_refused(schemas: SchemaSet) -> None:
    data = schemas.encode(FULL_NAMES[TopicRole.SHIPMENTS], SAMPLES[TopicRole.SHIPMENTS]())
    with pytest.raises(DecodeError) as caught:
        schemas.decode(data, RECORD_OF_TOPIC[TopicRole.PURCHASES])
    assert caught.value.kind is DeadLetterError.WRONG_TOPIC
    assert "ShipmentEvent" in caught.value.reason


def test_an_older_schema_version_decodes_into_the_current_one(tmp_path: Path) -> None:
    """Schema evolution: records written with a version kept in history/ still decode."""
    shutil.copytree(schemas_dir(), tmp_path / "schemas")
    current_path = tmp_path / "schemas" / "shipment-event.avsc"
    old = json.loads(current_path.read_text())
    new = json.loads(current_path.read_text())
    new["fields"].append(
        {"name": "signed_by", "type": ["null", "string"], "default": None, "doc": "Who signed."}
    )
    (tmp_path / "schemas" / "history").mkdir(exist_ok=True)
    (tmp_path / "schemas" / "history" / "shipment-event-1.avsc").write_text(json.dumps(old))
    current_path.write_text(json.dumps(new))

    evolved = SchemaSet.load(tmp_path / "schemas")
    written_by_old = SchemaSet.load(schemas_dir()).encode(
        FULL_NAMES[TopicRole.SHIPMENTS], SAMPLES[TopicRole.SHIPMENTS]()
    )
    record = evolved.decode(written_by_old, FULL_NAMES[TopicRole.SHIPMENTS]).record
    assert record == {**SAMPLES[TopicRole.SHIPMENTS](), "signed_by": None}


def test_two_current_versions_of_one_record_are_refused(tmp_path: Path) -> None:
    shutil.copytree(schemas_dir(), tmp_path / "schemas")
    shutil.copy(
        tmp_path / "schemas" / "shipment-event.avsc", tmp_path / "schemas" / "shipment-v2.avsc"
    )
    with pytest.raises(CodecError, match=r"both define io\.aftercare\.v1\.ShipmentEvent"):
        SchemaSet.load(tmp_path / "schemas")


def test_a_broken_schema_file_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "broken.avsc").write_text('{\n  "type": "record",\n  "name": oops\n}')
    with pytest.raises(CodecError, match=r"broken.avsc:3: not valid JSON"):
        SchemaSet.load(tmp_path)


@pytest.mark.parametrize("role", COPARTITIONED_ROLES, ids=str)
@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 3, 2, 9, 30, 0, 123000, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),  # before the epoch: a negative long
        datetime(2100, 1, 1, tzinfo=UTC),
    ],
    ids=["now", "before-epoch", "far-future"],
)
def test_occurred_at_is_read_without_decoding(
    schemas: SchemaSet, role: TopicRole, moment: datetime
) -> None:
    record = SAMPLES[role](occurred_at=moment, event_id="ü" * 70, customer_id="c" * 300)
    data = schemas.encode(FULL_NAMES[role], record)
    assert peek_occurred_at(data) == int(moment.timestamp() * 1000)


@pytest.mark.parametrize(
    "data",
    [None, b"", b"not avro at all", MARKER + b"\x00" * 8, MARKER + b"\x00" * 8 + b"\x80\x80"],
    ids=["tombstone", "empty", "text", "header-only", "truncated"],
)
def test_occurred_at_of_what_is_not_an_event_is_unknown(data: bytes | None) -> None:
    assert peek_occurred_at(data) is None


@pytest.mark.parametrize(
    "path", sorted((schemas_dir() / "history").glob("*.avsc")), ids=lambda p: p.name
)
def test_records_of_every_earlier_version_still_decode(schemas: SchemaSet, path: Path) -> None:
    """Producers and topics still hold records of the versions before a field was added."""
    old = fastavro.parse_schema(json.loads(path.read_text()), named_schemas={})
    full_name = old["name"]
    (role,) = [r for r, name in FULL_NAMES.items() if name == full_name]
    record = {f["name"]: SAMPLES[role]()[f["name"]] for f in old["fields"]}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, old, record)
    canonical = fastavro.schema.to_parsing_canonical_form(old)
    fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    decoded = schemas.decode(MARKER + fingerprint + body.getvalue(), full_name).record
    current = json.loads(schemas.current(full_name).path.read_text())["fields"]
    added = {f["name"]: f["default"] for f in current if f["name"] not in record}
    assert added  # a later version added fields: they take their defaults
    assert decoded == {**record, **added}
