"""The journey core does no I/O, reads no files and no clock: it imports none of the libraries that
would (YAML included: the journeys file is read outside it, by ``pipeline.journeysfile``)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pipeline.journeys

FORBIDDEN = (
    "faust",
    "aiokafka",
    "httpx",
    "aiosmtplib",
    "prometheus_client",
    "mode",
    "asyncio",
    "yaml",
    "pipeline.journeysfile",
)
CORE = sorted(
    f"pipeline.journeys.{found.name}" for found in pkgutil.iter_modules(pipeline.journeys.__path__)
)


def test_the_core_is_all_its_modules() -> None:
    assert {"pipeline.journeys.engine", "pipeline.journeys.kinds"} <= set(CORE)


def test_the_core_imports_no_io_library() -> None:
    code = (
        f"import sys; [__import__(m) for m in {CORE!r}];"
        f"print(sorted(m for m in sys.modules if m in {FORBIDDEN!r}"
        f" or m.split('.')[0] in {FORBIDDEN!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_core_never_reads_the_clock_or_a_file() -> None:
    for name in CORE:
        source = inspect.getsource(importlib.import_module(name))
        for call in (
            "datetime.now(",
            "datetime.utcnow(",
            "time.time(",
            "time.monotonic(",
            "date.today(",
            "open(",
            ".read_text(",
            ".read_bytes(",
        ):
            assert call not in source, f"{name} calls {call}"
