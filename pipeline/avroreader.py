"""Avro binary decoding compiled from a schema: fastavro's records, quicker, for the usual case.

The reading counterpart of :mod:`pipeline.avrowriter`: one generated Python function per record
type, its fields read in line, for a record read with the schema it was written with (the usual
case: producers use the current schemas). A record written with an older schema needs schema
resolution, and that is left to fastavro.

It returns exactly what fastavro returns (the same dicts, lists, strings, and timestamps as UTC
datetimes), or refuses: a record that ends early, a varint longer than a long, an index outside
an enum or a union, bytes that are not UTF-8, anything that raises, all end in
:class:`Unsupported`, and the caller reads that record with fastavro, which gives its own answer
or its own error (and so the same dead-letter reason as before). Tests hold the two equal over
generated records of every schema, and over the same records cut short or corrupted.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

Read = Callable[[bytes, int], tuple[dict[str, Any], int]]  # data, start -> record, end

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Unsupported(Exception):
    """This record (or this schema) is not read here; fastavro reads it."""


def _long(data: bytes, p: int) -> tuple[int, int]:
    """The zig-zag varint at ``p`` and the position after it."""
    n = shift = 0
    while True:
        b = data[p]
        p += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise Unsupported("a varint longer than a long")
    if n >> 64:
        raise Unsupported("a varint longer than a long")
    return (n >> 1) ^ -(n & 1), p


def _millis(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value * 1000)


_FLOAT = struct.Struct("<f").unpack_from
_DOUBLE = struct.Struct("<d").unpack_from


def compile_reader(parsed: Mapping[str, Any]) -> Read:
    """The reader of a record schema in fastavro's parsed form (records written with that same
    schema); :class:`Unsupported` if the schema has a type read only by fastavro."""
    generator = _Generator()
    entry = generator.record(parsed)
    namespace: dict[str, Any] = {
        "Unsupported": Unsupported,
        "_long": _long,
        "_millis": _millis,
        "_FLOAT": _FLOAT,
        "_DOUBLE": _DOUBLE,
        **generator.constants,
    }
    code = compile("\n".join(generator.source), f"<avro reader {parsed['name']}>", "exec")
    exec(code, namespace)
    inner: Read = namespace[entry]

    def read(data: bytes, start: int) -> tuple[dict[str, Any], int]:
        try:
            return inner(data, start)
        except Unsupported:
            raise
        except Exception as exc:  # short, corrupt, not UTF-8: fastavro says what it thinks
            raise Unsupported(f"{type(exc).__name__}: {exc}") from exc

    return read


def _varint(target: str) -> list[str]:
    """Lines reading the varint at ``p`` into ``target``, one byte in line."""
    return [
        "b = d[p]",
        "if b < 128:",
        f"    {target} = (b >> 1) ^ -(b & 1)",
        "    p += 1",
        "else:",
        f"    {target}, p = _long(d, p)",
    ]


class _Generator:
    """Python source of one function per record type, and the constants they use."""

    def __init__(self) -> None:
        self.source: list[str] = []
        self.constants: dict[str, Any] = {}
        self.functions: dict[str, str] = {}  # record full name -> function name
        self.enums: dict[str, str] = {}  # enum full name -> name of its symbols tuple

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def record(self, schema: Mapping[str, Any]) -> str:
        function = f"_record{len(self.functions)}"
        self.functions[schema["name"]] = function
        body: list[str] = []
        names = []
        for n, field in enumerate(schema["fields"]):
            body.extend(self.read(field["type"], f"v{n}", 0))
            names.append(f"{field['name']!r}: v{n}")
        body.append(f"return {{{', '.join(names)}}}, p")
        self.source.append(f"def {function}(d, p):")
        self.source.extend(f"    {line}" for line in body)
        return function

    def read(self, schema: Any, target: str, depth: int) -> list[str]:
        """Lines reading the datum at ``p`` into the variable ``target``."""
        if isinstance(schema, list):
            return self.union(schema, target, depth)
        if isinstance(schema, str):
            if schema in self.functions:
                return [f"{target}, p = {self.functions[schema]}(d, p)"]
            if schema in self.enums:
                return self.enum(self.enums[schema], target)
            return self.primitive(schema, target)
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical is not None:
            if kind == "long" and logical == "timestamp-millis":
                return [*_varint(target), f"{target} = _millis({target})"]
            raise Unsupported(f"logical type {logical}")
        if kind == "record":
            function = self.record(schema)
            return [f"{target}, p = {function}(d, p)"]
        if kind == "enum":
            self.enums[schema["name"]] = symbols = self.constant(tuple(schema["symbols"]))
            return self.enum(symbols, target)
        if kind in ("array", "map"):
            return self.blocks(schema, kind, target, depth)
        return self.primitive(kind, target)

    @staticmethod
    def enum(symbols: str, target: str) -> list[str]:
        return [
            *_varint(target),
            f"if {target} < 0:",
            "    raise Unsupported('not a symbol')",
            f"{target} = {symbols}[{target}]",
        ]

    def blocks(self, schema: Mapping[str, Any], kind: str, target: str, depth: int) -> list[str]:
        # Items come in blocks, each a count (negative: followed by its size in bytes) and that
        # many items, up to a block of none.
        count, item, key = f"n{depth}", f"i{depth}", f"k{depth}"
        if kind == "array":
            start = f"{target} = []"
            each = [*self.read(schema["items"], item, depth + 1), f"{target}.append({item})"]
        else:
            start = f"{target} = {{}}"
            each = [
                *self.primitive("string", key),
                *self.read(schema["values"], item, depth + 1),
                f"{target}[{key}] = {item}",
            ]
        return [
            start,
            "while True:",
            *(f"    {line}" for line in _varint(count)),
            f"    if {count} == 0:",
            "        break",
            f"    if {count} < 0:",
            f"        {count} = -{count}",
            "        _, p = _long(d, p)",
            f"    for _ in range({count}):",
            *(f"        {line}" for line in each),
        ]

    def primitive(self, kind: str, target: str) -> list[str]:
        if kind in ("string", "bytes"):
            value = "d[p:e].decode()" if kind == "string" else "d[p:e]"
            return [
                *_varint("n"),
                "e = p + n",
                "if n < 0 or e > len(d):",
                "    raise Unsupported('ends early')",
                f"{target} = {value}",
                "p = e",
            ]
        if kind in ("long", "int"):
            return _varint(target)
        if kind == "boolean":
            return [f"{target} = d[p] != 0", "p += 1"]
        if kind == "null":
            return [f"{target} = None"]
        if kind in ("float", "double"):
            unpack, size = ("_FLOAT", 4) if kind == "float" else ("_DOUBLE", 8)
            return [f"({target},) = {unpack}(d, p)", f"p += {size}"]
        raise Unsupported(f"type {kind}")

    def union(self, branches: list[Any], target: str, depth: int) -> list[str]:
        if len(branches) != 2 or "null" not in branches:
            raise Unsupported("a union other than null and one type")
        null_at = branches.index("null")
        other = branches[1 - null_at]
        return [
            "b = d[p]",
            "p += 1",
            f"if b == {null_at * 2}:",
            f"    {target} = None",
            f"elif b == {(1 - null_at) * 2}:",
            *(f"    {line}" for line in self.read(other, target, depth)),
            "else:",
            "    raise Unsupported('not a branch of the union')",
        ]
