"""The journey core does no I/O and reads no clock: it imports none of the I/O libraries."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("faust", "aiokafka", "httpx", "aiosmtplib", "prometheus_client", "mode", "asyncio")


def test_the_core_imports_no_io_library() -> None:
    code = (
        "import sys, pipeline.journeys.engine, pipeline.journeys.rules, pipeline.journeys.policies;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_core_never_reads_the_clock() -> None:
    import inspect

    from pipeline.journeys import engine, model, policies, rules

    for module in (engine, model, policies, rules):
        source = inspect.getsource(module)
        for call in (
            "datetime.now(",
            "datetime.utcnow(",
            "time.time(",
            "time.monotonic(",
            "date.today(",
        ):
            assert call not in source, f"{module.__name__} calls {call}"
