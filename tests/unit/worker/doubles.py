"""Stand-ins for the worker's unit tests."""

from __future__ import annotations

from pipeline.intake import SourceRecord


class DictTable:
    """A ``StateTable`` (:mod:`pipeline.worker.processor`) over a plain mapping."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data = {} if data is None else data

    def read(self, key: bytes, source: SourceRecord) -> bytes | None:
        return self.data.get(key)

    def write(self, key: bytes, value: bytes, source: SourceRecord) -> None:
        self.data[key] = value
