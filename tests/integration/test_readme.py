"""The README's producer example works as printed, and the pipeline reads what it produces."""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.clock import SystemClock
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.intake import Admitted, SourceRecord, admit
from pipeline.names import TopicRole
from tests.integration.kafkatools import end_offsets, wait_for_new
from tests.samples import FULL_NAMES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def _python_example() -> str:
    (block,) = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return block


async def test_the_readme_producer_example_produces_an_event_aftercare_admits(
    kafka: Settings, schemas: SchemaSet, tmp_path: Path
) -> None:
    topic = kafka.topic(TopicRole.PURCHASES)
    code = (
        _python_example()
        .replace('"purchases"', repr(topic))
        .replace('"127.0.0.1:9092"', repr(kafka.bootstrap_servers))
    )
    assert repr(topic) in code
    script = tmp_path / "produce.py"
    script.write_text(code)
    before = await end_offsets(kafka, topic)
    process = await asyncio.create_subprocess_exec(sys.executable, str(script), cwd=ROOT)
    assert await asyncio.wait_for(process.wait(), 60) == 0

    (message,) = await wait_for_new(kafka, topic, before, 1)
    verdict = admit(
        schemas,
        TopicRole.PURCHASES,
        SourceRecord(topic, message.partition, message.offset, message.key, message.value),
        now=SystemClock().now(),
        max_future=timedelta(seconds=kafka.max_future_seconds),
    )
    assert isinstance(verdict, Admitted), getattr(verdict, "reason", None)
    assert verdict.full_name == FULL_NAMES[TopicRole.PURCHASES]
    assert verdict.record["customer_id"] == "cust-1042"
