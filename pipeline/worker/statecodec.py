"""A customer's journey state as bytes for the table (and its changelog), and back.

A table value is the customer's next wake-up, 8 bytes in front (so that the due index is rebuilt
from the table without reading any state), then the state: :func:`encode_value` and
:func:`decode_value` are the whole format; :func:`unpack_wake` reads only the wake-up.

JSON, versioned: readable when an operator has to look at a changelog record, and tolerant of code
changes (fields are matched by name; a field added later takes its default, a field dropped later
is ignored). Enums are their values, tuples lists, datetimes ISO 8601 with their UTC offset.

This runs twice for every record the worker handles. Writing is orjson's own walk over the
dataclasses (about fifteen times quicker than converting to plain data and then encoding it).
Reading the current version is msgspec's typed JSON decoder, straight into the dataclasses (about
twice as quick as the plan below, for the same objects); anything it refuses (an older version, a
value of a looser type than the hint) is read by a plan made once per type: each field gets a
converter chosen from its type hint when the codec first meets the type, and the per-record work
is a loop over that plan.

Version 1 (the first release) left fields at their defaults out and wrote datetimes as UTC
milliseconds; it is still read, so a table written by an older worker recovers unchanged.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

import msgspec
import orjson

from pipeline.journeys.model import CustomerState

VERSION = 2
READABLE_VERSIONS = (1, 2)

Convert = Callable[[Any], Any]


class StateDecodeError(ValueError):
    pass


# Table values are this 8-byte big-endian wake-up (UTC millis, -1 for none) followed by the state,
# so the index can be rebuilt from the table without parsing any state.
_WAKE = struct.Struct(">q")
NO_WAKE = -1


def pack(wake: datetime | None, state: bytes) -> bytes:
    return _WAKE.pack(NO_WAKE if wake is None else int(wake.timestamp() * 1000)) + state


def unpack_wake(value: bytes) -> int:
    (millis,) = _WAKE.unpack_from(value)
    return int(millis)


def unpack_state(value: bytes) -> bytes:
    return value[_WAKE.size :]


def encode_value(wake: datetime | None, state: CustomerState) -> bytes:
    """The table value of ``state``, whose next wake-up is ``wake``."""
    return pack(wake, encode_state(state))


def decode_value(value: bytes) -> CustomerState:
    """The state in a table value."""
    return decode_state(unpack_state(value))


def encode_state(state: CustomerState) -> bytes:
    return orjson.dumps({"v": VERSION, "s": state})


@dataclasses.dataclass(frozen=True)
class _Current:
    """A stored document of the current version, as msgspec decodes it."""

    v: typing.Literal[2]  # VERSION
    s: CustomerState


_CURRENT = msgspec.json.Decoder(_Current)


def decode_state(data: bytes) -> CustomerState:
    try:
        return _CURRENT.decode(data).s
    except (msgspec.DecodeError, ValueError, TypeError):
        pass  # an older version, a looser value, or not a state at all: the planned reading says
    return _decode_planned(data)


def _decode_planned(data: bytes) -> CustomerState:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise StateDecodeError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise StateDecodeError(f"expected a JSON object, got {type(document).__name__}")
    if document.get("v") not in READABLE_VERSIONS:
        raise StateDecodeError(f"unknown state version {document.get('v')!r}")
    try:
        state = _decoder(CustomerState)(document["s"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateDecodeError(f"not a customer state: {type(exc).__name__}: {exc}") from exc
    assert isinstance(state, CustomerState)
    return state


def _identity(value: Any) -> Any:
    return value


def _to_datetime(value: str | int) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return datetime.fromtimestamp(value / 1000, UTC)  # version 1: UTC milliseconds


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@cache
def _decoder(kind: Any) -> Convert:
    """What turns plain JSON data back into a value of type ``kind``."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        inner = _decoder(options[0])
        if inner is _identity:
            return _identity
        return lambda value: None if value is None else inner(value)
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            if item is _identity:
                return tuple
            return lambda value: tuple([item(v) for v in value])
        parts = [_decoder(arg) for arg in args]
        return lambda value: tuple([p(v) for p, v in zip(parts, value, strict=True)])
    if isinstance(kind, type):
        if dataclasses.is_dataclass(kind):
            return _dataclass_decoder(kind)
        if kind is datetime:
            return _to_datetime
        if issubclass(kind, enum.Enum):
            # A dict lookup: calling the enum class costs about twenty times as much.
            return {member.value: member for member in kind}.__getitem__
    return _identity


def _dataclass_decoder(cls: type) -> Convert:
    """A function written for ``cls``, as dataclasses writes ``__init__``: one line per field.

    The instance is built the way ``model.evolve`` builds copies: its fields set directly, without
    the frozen class's ``__init__`` (these classes have no ``__post_init__`` to run). A field the
    data lacks takes its default; one without a default is a KeyError; names the class no longer
    has are never looked at.
    """
    hints = _hints(cls)
    namespace: dict[str, Any] = {"cls": cls, "new": object.__new__, "MISSING": _NO_DEFAULT}
    lines = ["def decode(value):", "    get = value.get", "    fields = {"]
    tail = []
    for n, f in enumerate(dataclasses.fields(cls)):
        name = repr(f.name)
        convert = _decoder(hints[f.name])
        default = _default(f)
        namespace[f"default{n}"] = default
        namespace[f"convert{n}"] = convert
        if default is _NO_DEFAULT:
            read = f"value[{name}]"
            lines.append(
                f"        {name}: {read if convert is _identity else f'convert{n}({read})'},"
            )
        elif convert is _identity:
            lines.append(f"        {name}: get({name}, default{n}),")
        else:
            tail += [
                f"    item = get({name}, MISSING)",
                f"    fields[{name}] = default{n} if item is MISSING else convert{n}(item)",
            ]
    lines += ["    }", *tail, "    instance = new(cls)", "    instance.__dict__.update(fields)"]
    lines.append("    return instance")
    exec("\n".join(lines), namespace)  # the code above, written from the class's own fields
    decode: Convert = namespace["decode"]
    return decode


_NO_DEFAULT = object()


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return _NO_DEFAULT
