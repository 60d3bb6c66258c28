"""JSON in and out of Avro records, for people and tools at the command line.

Going in (``aftercare produce``), timestamps may be written as ISO 8601 strings
(``2026-03-02T09:30:00Z``) or as UTC milliseconds, and bytes as base64; going out
(``aftercare consume``), timestamps are ISO 8601 in UTC and bytes are base64, so ``jq`` can read it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def from_json(schema: Any, value: Any, where: str = "") -> Any:
    """Convert a JSON value to what the Avro writer takes, guided by the parsed ``schema``."""
    if isinstance(schema, list):  # a union: the first branch that accepts the value wins
        if value is None and "null" in schema:
            return None
        errors = []
        for branch in schema:
            if branch == "null":
                continue
            try:
                return from_json(branch, value, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if errors else f"{where or 'value'}: null is not allowed")
    if isinstance(schema, dict):
        kind = schema.get("type")
        if schema.get("logicalType") == "timestamp-millis":
            return _timestamp(value, where)
        if kind == "record":
            if not isinstance(value, Mapping):
                raise ValueError(f"{where or 'the line'}: expected an object")
            unknown = set(value) - {field["name"] for field in schema["fields"]}
            if unknown:
                raise ValueError(f"{where or 'the line'}: unknown fields {sorted(unknown)}")
            return {
                field["name"]: from_json(field["type"], value[field["name"]], _at(where, field))
                for field in schema["fields"]
                if field["name"] in value
            }
        if kind == "array":
            if not isinstance(value, list):
                raise ValueError(f"{where}: expected a list")
            return [from_json(schema["items"], v, f"{where}[{i}]") for i, v in enumerate(value)]
        if kind == "map":
            if not isinstance(value, Mapping):
                raise ValueError(f"{where}: expected an object")
            return {k: from_json(schema["values"], v, f"{where}.{k}") for k, v in value.items()}
        if kind == "enum":
            if value not in schema["symbols"]:
                raise ValueError(f"{where}: {value!r} is not one of {schema['symbols']}")
            return value
        return from_json(kind, value, where)
    if schema == "bytes":
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError(f"{where}: not valid base64") from None
    return value


def to_json(value: Any) -> Any:
    """Make a decoded Avro record JSON-serialisable."""
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _timestamp(value: Any, where: str) -> datetime:
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a timestamp")
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not an ISO 8601 timestamp") from None
        if moment.tzinfo is None:
            raise ValueError(f"{where}: {value!r} has no time zone; add Z for UTC")
        return moment.astimezone(UTC)
    raise ValueError(f"{where}: expected an ISO 8601 string or UTC milliseconds")


def _at(where: str, field: Mapping[str, Any]) -> str:
    return f"{where}.{field['name']}" if where else str(field["name"])
