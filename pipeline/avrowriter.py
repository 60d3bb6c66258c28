"""Avro binary encoding compiled from a schema: fastavro's bytes, quicker for Aftercare's records.

fastavro walks the parsed schema for every datum it writes: for each field it looks the type up,
dispatches on it, and converts a logical type through a table of functions. On the worker's
commands (a TouchpointCommand of some 40 fields, most of them nested or nullable) that came to
40-70 µs a record, the largest single cost of a timer's wake. :func:`compile_writer` walks the
schema once and generates one Python function per record type, its fields written in line, as
``dataclasses`` generates ``__init__``.

It writes exactly what fastavro writes, or refuses: a value of another type than the schema's (an
int for a string, a naive datetime, a symbol not in the enum), a missing field without a default,
anything that raises while writing, all end in :class:`Unsupported`, and the caller encodes that
record with fastavro, which gives its own answer or its own error. A schema with a type written
only by fastavro (a union other than ``["null", X]``, fixed, other logical types) is refused when
compiled. Tests hold the two byte-equal over generated records of every schema in ``schemas/``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

Write = Callable[[bytearray, Any], None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class Unsupported(Exception):
    """This value (or this schema) is not written here; fastavro writes it."""


def _long(out: bytearray, n: Any) -> None:
    """A zig-zag varint of a long."""
    if type(n) is not int or not _LONG_MIN <= n <= _LONG_MAX:
        raise Unsupported("not a long")
    n = (n << 1) ^ (n >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _int(out: bytearray, n: Any) -> None:
    if type(n) is not int or not _INT_MIN <= n <= _INT_MAX:
        raise Unsupported("not an int")
    _long(out, n)


def _length(out: bytearray, n: int) -> None:
    """A length or a count (never negative), the common case of one byte in line."""
    if n < 64:
        out.append(n << 1)
    else:
        _long(out, n)


def _timestamp(out: bytearray, value: Any) -> None:
    """A timestamp-millis as fastavro converts it: whole milliseconds since the epoch, the
    microseconds truncated toward zero; an int is taken as it is."""
    if type(value) is datetime:
        if value.tzinfo is None:
            raise Unsupported("a naive datetime")  # fastavro reads it in the local zone
        delta = value - _EPOCH
        value = (delta.days * 86400 + delta.seconds) * 1000 + int(delta.microseconds / 1000)
    _long(out, value)


_FLOAT = struct.Struct("<f").pack
_DOUBLE = struct.Struct("<d").pack


def compile_writer(parsed: Mapping[str, Any]) -> Write:
    """The writer of a record schema in fastavro's parsed form; :class:`Unsupported` if the
    schema has a type written only by fastavro."""
    generator = _Generator()
    entry = generator.record(parsed)
    namespace: dict[str, Any] = {
        "Unsupported": Unsupported,
        "_long": _long,
        "_int": _int,
        "_length": _length,
        "_timestamp": _timestamp,
        "_FLOAT": _FLOAT,
        "_DOUBLE": _DOUBLE,
        **generator.constants,
    }
    code = compile("\n".join(generator.source), f"<avro writer {parsed['name']}>", "exec")
    exec(code, namespace)
    inner: Write = namespace[entry]

    def write(out: bytearray, record: Any) -> None:
        try:
            inner(out, record)
        except Unsupported:
            raise
        except Exception as exc:  # a value that does not fit: fastavro says what it thinks
            raise Unsupported(f"{type(exc).__name__}: {exc}") from exc

    return write


class _Generator:
    """Python source of one function per record type, and the constants they use."""

    def __init__(self) -> None:
        self.source: list[str] = []
        self.constants: dict[str, Any] = {}
        self.functions: dict[str, str] = {}  # record full name -> function name
        self.enums: dict[str, str] = {}  # enum full name -> name of its symbol -> index dict

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def record(self, schema: Mapping[str, Any]) -> str:
        function = f"_record{len(self.functions)}"
        self.functions[schema["name"]] = function
        body: list[str] = []
        for n, field in enumerate(schema["fields"]):
            value = f"v{n}"
            key = repr(field["name"])
            if "default" in field:
                body.append(f"{value} = r.get({key}, {self.constant(field['default'])})")
            else:
                body.append(f"{value} = r[{key}]")
            body.extend(self.write(field["type"], value, 0))
        self.source.append(f"def {function}(out, r):")
        self.source.extend(f"    {line}" for line in body or ["pass"])
        return function

    def write(self, schema: Any, value: str, depth: int) -> list[str]:
        """Lines writing the datum held in the variable ``value``."""
        if isinstance(schema, list):
            return self.union(schema, value, depth)
        if isinstance(schema, str):
            if schema in self.functions:
                return [f"{self.functions[schema]}(out, {value})"]
            if schema in self.enums:
                return [f"_length(out, {self.enums[schema]}[{value}])"]
            return self.primitive(schema, value)
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical is not None:
            if kind == "long" and logical == "timestamp-millis":
                return [f"_timestamp(out, {value})"]
            raise Unsupported(f"logical type {logical}")
        if kind == "record":
            # Nested records are generated after the enclosing one's lines are taken.
            function = self.record(schema)
            return [f"{function}(out, {value})"]
        if kind == "enum":
            index = {symbol: n for n, symbol in enumerate(schema["symbols"])}
            self.enums[schema["name"]] = name = self.constant(index)
            return [f"_length(out, {name}[{value}])"]
        if kind == "array":
            item = f"i{depth}"
            return [
                f"if type({value}) is not list and type({value}) is not tuple:",
                "    raise Unsupported('not a list')",
                f"if {value}:",
                f"    _length(out, len({value}))",
                f"    for {item} in {value}:",
                *(f"        {line}" for line in self.write(schema["items"], item, depth + 1)),
                "out.append(0)",
            ]
        if kind == "map":
            key, item = f"k{depth}", f"i{depth}"
            return [
                f"if type({value}) is not dict:",
                "    raise Unsupported('not a dict')",
                f"if {value}:",
                f"    _length(out, len({value}))",
                f"    for {key}, {item} in {value}.items():",
                *(f"        {line}" for line in self.primitive("string", key)),
                *(f"        {line}" for line in self.write(schema["values"], item, depth + 1)),
                "out.append(0)",
            ]
        return self.primitive(kind, value)

    def primitive(self, kind: str, value: str) -> list[str]:
        if kind == "string":
            return [
                f"if type({value}) is not str:",
                "    raise Unsupported('not a str')",
                f"b = {value}.encode()",
                "n = len(b)",
                "if n < 64:",
                "    out.append(n << 1)",
                "else:",
                "    _long(out, n)",
                "out += b",
            ]
        if kind == "bytes":
            return [
                f"if type({value}) is not bytes:",
                "    raise Unsupported('not bytes')",
                f"_length(out, len({value}))",
                f"out += {value}",
            ]
        if kind == "long":
            return [
                f"if type({value}) is int and 0 <= {value} < 64:",
                f"    out.append({value} << 1)",
                "else:",
                f"    _long(out, {value})",
            ]
        if kind == "int":
            return [f"_int(out, {value})"]
        if kind == "boolean":
            return [
                f"if {value} is True:",
                "    out.append(1)",
                f"elif {value} is False:",
                "    out.append(0)",
                "else:",
                "    raise Unsupported('not a bool')",
            ]
        if kind == "null":
            return [f"if {value} is not None:", "    raise Unsupported('not null')"]
        if kind in ("float", "double"):
            pack = "_FLOAT" if kind == "float" else "_DOUBLE"
            return [
                f"if type({value}) is not float:",
                "    raise Unsupported('not a float')",
                f"out += {pack}({value})",
            ]
        raise Unsupported(f"type {kind}")

    def union(self, branches: list[Any], value: str, depth: int) -> list[str]:
        if len(branches) != 2 or "null" not in branches:
            raise Unsupported("a union other than null and one type")
        null_at = branches.index("null")
        other = branches[1 - null_at]
        return [
            f"if {value} is None:",
            f"    out.append({null_at * 2})",
            "else:",
            f"    out.append({(1 - null_at) * 2})",
            *(f"    {line}" for line in self.write(other, value, depth)),
        ]
