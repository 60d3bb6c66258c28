"""What the harness needs of the pipeline, on today's code and on an older revision's.

``BENCH_AGAINST`` runs today's ``bench/`` and ``tests/`` on a revision's ``pipeline/``: a name
the harness imports must be found where that revision kept it too. Each entry says where it
lived before.
"""

from __future__ import annotations

from typing import Any

try:
    from pipeline.journeysfile import load_journeys
except ImportError:  # before the journeys file reader moved out of the core
    from pipeline.journeys.rules import load_journeys  # type: ignore[no-redef]

try:
    from pipeline.worker.statecodec import pack
except ImportError:  # before the table value's format moved into the state codec
    from pipeline.worker.scheduler import pack  # type: ignore[no-redef,attr-defined]

try:
    from pipeline.records import Dispatch
except ImportError:  # before dispatch records were typed: a Message carried the record itself
    Dispatch = None  # type: ignore[assignment,misc]


def message_command(record: dict[str, Any]) -> dict[str, Any]:
    """The keyword a channel Message takes the dispatch record by."""
    if Dispatch is None:
        return {"command": record}
    return {"dispatch": Dispatch.of(record)}


__all__ = ["load_journeys", "message_command", "pack"]
