"""A customer's journey state as bytes for the table (and its changelog), and back.

Compact JSON, versioned: readable when an operator has to look at a changelog record, and tolerant
of code changes (fields are matched by name; a field added later takes its default). Datetimes are
UTC milliseconds, enums their values, tuples lists; a field equal to its default is left out.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from datetime import UTC, datetime
from functools import cache
from typing import Any

from pipeline.journeys.model import CustomerState

VERSION = 1


class StateDecodeError(ValueError):
    pass


def encode_state(state: CustomerState) -> bytes:
    return json.dumps({"v": VERSION, "s": _plain(state)}, separators=(",", ":")).encode()


def decode_state(data: bytes) -> CustomerState:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise StateDecodeError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise StateDecodeError(f"expected a JSON object, got {type(document).__name__}")
    if document.get("v") != VERSION:
        raise StateDecodeError(f"unknown state version {document.get('v')!r}")
    state = _typed(CustomerState, document["s"])
    assert isinstance(state, CustomerState)
    return state


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            if item == _default(field):
                continue
            out[field.name] = _plain(item)
        return out
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _typed(kind: Any, value: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None:
            return None
        return _typed(options[0], value)
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(args[0], item) for item in value)
        return tuple(_typed(arg, item) for arg, item in zip(args, value, strict=True))
    if isinstance(kind, type):
        if dataclasses.is_dataclass(kind):
            hints = _hints(kind)
            names = {f.name for f in dataclasses.fields(kind)}
            present = {k: _typed(hints[k], v) for k, v in value.items() if k in names}
            return kind(**present)
        if kind is datetime:
            return datetime.fromtimestamp(value / 1000, UTC)
        if issubclass(kind, enum.Enum):
            return kind(value)
    return value


_NO_DEFAULT = object()


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return _NO_DEFAULT
