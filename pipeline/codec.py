"""Avro single-object encoding of every record on Aftercare's topics.

The wire format is the Avro specification's single-object encoding, so any Avro library can read a
record with the schema from ``schemas/`` and no registry::

    C3 01 | CRC-64-AVRO fingerprint of the writer schema (8 bytes, little-endian) | Avro binary body

The fingerprint is taken over the schema's Parsing Canonical Form as the specification defines it
(logical types stripped, primitives collapsed to their bare name), which is what the Java
implementation and fastavro compute. The Python reference implementation (``avro`` 1.12) leaves
``{"type":"long"}`` behind for logical types and so fingerprints such schemas differently; the same
divergence is known elsewhere (goavro#174, AVRO-4004).

Every ``.avsc`` file under ``schemas/`` is a known *writer* schema; the files directly in
``schemas/`` are the *current* (reader) schemas, one per record type. Older versions kept under
``schemas/history/`` still decode, resolved to the current schema by Avro's schema resolution.
A fingerprint that matches no file is refused.

Errors, all subclasses of :class:`CodecError`:

- :class:`DecodeError` carries a :class:`DeadLetterError` kind and a reason a human can act on;
  the intake turns it into a dead letter.
- :class:`EncodeError` means a record does not fit its schema (a bug in the producer of it).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint as _fingerprint
from fastavro.schema import to_parsing_canonical_form

from pipeline import avroreader, avrowriter, resources

MARKER = b"\xc3\x01"
HEADER_SIZE = len(MARKER) + 8


class DeadLetterError(StrEnum):
    """Why an input record could not be used; mirrors the DeadLetterError enum of the schema."""

    NOT_AVRO = "NOT_AVRO"
    UNKNOWN_SCHEMA = "UNKNOWN_SCHEMA"
    WRONG_TOPIC = "WRONG_TOPIC"
    UNDECODABLE = "UNDECODABLE"
    INVALID = "INVALID"
    KEY_MISMATCH = "KEY_MISMATCH"
    UNPROCESSABLE = "UNPROCESSABLE"


class CodecError(Exception):
    """Base of the codec's errors."""


class DecodeError(CodecError):
    def __init__(self, kind: DeadLetterError, reason: str, fingerprint: str | None = None) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason
        self.fingerprint = fingerprint


class EncodeError(CodecError):
    pass


@dataclass(frozen=True)
class Schema:
    """One schema file: a record type at one version."""

    full_name: str
    fingerprint: bytes  # as on the wire
    parsed: Any  # fastavro's parsed form
    path: Path
    # The same encoding and decoding compiled from the schema (pipeline.avrowriter and
    # avroreader); None: fastavro only.
    writer: avrowriter.Write | None = field(default=None, compare=False, repr=False)
    reader: avroreader.Read | None = field(default=None, compare=False, repr=False)

    @property
    def header(self) -> bytes:
        return MARKER + self.fingerprint


@dataclass(frozen=True)
class Decoded:
    """A decoded record and the schema it was written with."""

    full_name: str
    record: dict[str, Any]
    writer: Schema


class SchemaSet:
    """The schemas Aftercare speaks, indexed by name (to encode) and by fingerprint (to decode)."""

    def __init__(self, schemas: Iterable[Schema], current: Mapping[str, Schema]) -> None:
        self._by_fingerprint: dict[bytes, Schema] = {}
        for schema in schemas:
            other = self._by_fingerprint.get(schema.fingerprint)
            if other is not None and other.full_name != schema.full_name:
                raise CodecError(
                    f"{schema.path} and {other.path} have the same fingerprint "
                    f"{schema.fingerprint.hex()} but different names"
                )
            self._by_fingerprint.setdefault(schema.fingerprint, schema)
        self._current = dict(current)

    @classmethod
    def load(cls, directory: Path | None = None) -> SchemaSet:
        """Read every ``.avsc`` under ``directory`` (default: the project's ``schemas/``)."""
        root = directory if directory is not None else resources.schemas_dir()
        schemas: list[Schema] = []
        current: dict[str, Schema] = {}
        for path in sorted(root.rglob("*.avsc")):
            schema = _load_file(path)
            schemas.append(schema)
            if path.parent == root:
                if schema.full_name in current:
                    raise CodecError(
                        f"{path} and {current[schema.full_name].path} both define "
                        f"{schema.full_name}; keep older versions under {root / 'history'}"
                    )
                current[schema.full_name] = schema
        if not current:
            raise CodecError(f"no .avsc schema files in {root}")
        return cls(schemas, current)

    def current(self, full_name: str) -> Schema:
        try:
            return self._current[full_name]
        except KeyError:
            raise CodecError(f"no current schema named {full_name}") from None

    @property
    def names(self) -> list[str]:
        return sorted(self._current)

    def encode(self, full_name: str, record: Mapping[str, Any], *, strict: bool = True) -> bytes:
        """Encode ``record`` with the current schema of ``full_name``.

        ``strict`` (the default) refuses unknown fields, through fastavro. ``strict=False`` is for
        records built field by field from the schema by Aftercare's own code (the worker's
        commands and notices, the senders' outcomes: the hot paths), whose tests encode them
        strictly: it writes with the writer compiled from the schema (:mod:`pipeline.avrowriter`,
        the same bytes about three times quicker) and leaves to fastavro what that one does not
        take. A value of the wrong type is refused either way.
        """
        schema = self.current(full_name)
        if not strict and schema.writer is not None:
            out = bytearray(schema.header)
            try:
                schema.writer(out, record)
                return bytes(out)
            except avrowriter.Unsupported:
                pass  # fastavro writes it, or says why it cannot be written
        buffer = io.BytesIO()
        buffer.write(schema.header)
        try:
            # Unknown fields are refused and missing ones must have a default (fastavro's
            # `strict` alone would also refuse a missing field that has a default).
            fastavro.schemaless_writer(buffer, schema.parsed, record, strict_allow_default=strict)
        except Exception as exc:  # fastavro raises assorted types for a record that does not fit
            raise EncodeError(f"cannot encode a {full_name}: {exc}") from exc
        return buffer.getvalue()

    def decode(self, data: bytes | None, expected: str) -> Decoded:
        """Decode a single-object encoded record that should be a ``expected`` (full name)."""
        if data is None:
            raise DecodeError(
                DeadLetterError.NOT_AVRO,
                "the record has no value (a tombstone); input topics carry events, not deletions",
            )
        if len(data) < HEADER_SIZE or not data.startswith(MARKER):
            raise DecodeError(DeadLetterError.NOT_AVRO, _not_avro_reason(data))
        wire_fingerprint = data[len(MARKER) : HEADER_SIZE]
        fingerprint_hex = wire_fingerprint.hex()
        writer = self._by_fingerprint.get(wire_fingerprint)
        if writer is None:
            raise DecodeError(
                DeadLetterError.UNKNOWN_SCHEMA,
                f"schema fingerprint {fingerprint_hex} matches no schema in schemas/; encode with "
                f"the {expected.rsplit('.', 1)[-1]} schema from schemas/ (or add the new version "
                "there before producing it)",
                fingerprint_hex,
            )
        if writer.full_name != expected:
            raise DecodeError(
                DeadLetterError.WRONG_TOPIC,
                f"this is a {writer.full_name}, but this topic carries {expected}",
                fingerprint_hex,
            )
        reader = self._current[expected]
        if reader is writer and writer.reader is not None:
            try:
                quick, end = writer.reader(data, HEADER_SIZE)
            except avroreader.Unsupported:
                pass  # fastavro reads it, or says why it cannot be read
            else:
                return self._checked(quick, end, data, writer, fingerprint_hex)
        body = io.BytesIO(data)
        body.seek(HEADER_SIZE)
        try:
            record = fastavro.schemaless_reader(
                body,
                writer.parsed,
                reader.parsed if reader is not writer else None,
            )
        except Exception as exc:  # truncated or corrupt bodies raise EOFError, ValueError, ...
            raise DecodeError(
                DeadLetterError.UNDECODABLE,
                f"the body does not decode as {writer.full_name} ({writer.path.name}): "
                f"{type(exc).__name__}: {exc}".rstrip(": "),
                fingerprint_hex,
            ) from exc
        return self._checked(record, body.tell(), data, writer, fingerprint_hex)

    @staticmethod
    def _checked(
        record: Any, end: int, data: bytes, writer: Schema, fingerprint_hex: str
    ) -> Decoded:
        trailing = len(data) - end
        if trailing:
            raise DecodeError(
                DeadLetterError.UNDECODABLE,
                f"{trailing} bytes left over after a complete {writer.full_name}; the record is "
                "corrupt or was written with a different schema than its fingerprint says",
                fingerprint_hex,
            )
        if not isinstance(record, dict):
            raise DecodeError(
                DeadLetterError.UNDECODABLE,
                f"decoded to a {type(record).__name__}, not a record",
                fingerprint_hex,
            )
        return Decoded(writer.full_name, record, writer)  # the name expected (checked above)


def peek_occurred_at(data: bytes | None) -> int | None:
    """``occurred_at`` (UTC millis) of an event record, read without decoding it, or None.

    Every record the worker consumes (the input events and its due-notices) begins with
    ``event_id`` (string), ``customer_id`` (string), ``occurred_at`` (long): after the 10-byte
    header, two length-prefixed strings and a zig-zag varint. The worker orders records by it
    before deciding them; the full decode, with its checks, comes after.
    ``tests/unit/test_schemas.py`` holds every such schema to that prefix.
    """
    if data is None or len(data) < HEADER_SIZE + 3 or not data.startswith(MARKER):
        return None
    position = HEADER_SIZE
    try:
        for _ in range(2):  # event_id, customer_id
            length, position = _varint(data, position)
            if length < 0:
                return None
            position += length
        value, _ = _varint(data, position)
    except IndexError:
        return None
    return value


def _varint(data: bytes, position: int) -> tuple[int, int]:
    """A zig-zag varint at ``position``: (value, position after it)."""
    shift = result = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), position
        shift += 7
        if shift > 63:
            raise IndexError("varint too long")


def _load_file(path: Path) -> Schema:
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CodecError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    try:
        parsed = fastavro.parse_schema(definition, named_schemas={})
    except Exception as exc:
        raise CodecError(f"{path}: not a valid Avro schema: {exc}") from exc
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise CodecError(f"{path}: the top-level schema must be a record")
    canonical = to_parsing_canonical_form(parsed)
    try:
        writer: avrowriter.Write | None = avrowriter.compile_writer(parsed)
    except avrowriter.Unsupported:
        writer = None
    try:
        reader: avroreader.Read | None = avroreader.compile_reader(parsed)
    except avroreader.Unsupported:
        reader = None
    return Schema(
        full_name=parsed["name"],
        fingerprint=bytes.fromhex(_fingerprint(canonical, "CRC-64-AVRO")),
        parsed=parsed,
        path=path,
        writer=writer,
        reader=reader,
    )


def _not_avro_reason(data: bytes) -> str:
    if not data:
        return "the value is empty"
    if len(data) < HEADER_SIZE and data.startswith(MARKER[: len(data)]):
        return f"only {len(data)} bytes: shorter than the 10-byte single-object header"
    if data[:1] in (b"{", b"["):
        hint = "It looks like JSON. "
    elif data[:1] == b"\x00" and len(data) >= 5:
        hint = "It looks like Confluent Schema Registry framing (magic byte 0, schema id). "
    else:
        hint = ""
    return (
        f"the value starts with {data[:2].hex(' ')}, not the Avro single-object marker c3 01. "
        f"{hint}Encode events with Avro single-object encoding and the schemas in schemas/"
    )
