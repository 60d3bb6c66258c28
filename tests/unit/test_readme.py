"""The README tells the truth about configuration and topics."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import VARIABLES
from pipeline.names import TopicRole

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    per_topic = {f"AFTERCARE_TOPIC_{role.name}" for role in TopicRole}
    assert [v.name for v in VARIABLES if v.name not in per_topic and v.name not in README] == []
    # The per-topic overrides are listed by their suffixes.
    assert [role.name for role in TopicRole if f"_{role.name}`" not in README] == []


def test_every_topic_is_in_the_readme() -> None:
    assert [role.value for role in TopicRole if f"| `{role.value}` |" not in README] == []
