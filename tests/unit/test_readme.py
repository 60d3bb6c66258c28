"""The README tells the truth about configuration and topics."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.config import markdown_table
from pipeline.names import TopicRole

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_the_configuration_table_is_the_declared_settings() -> None:
    found = re.search(
        r"<!-- settings: aftercare config --markdown -->\n(.*?)<!-- end settings -->", README, re.S
    )
    assert found, "the README's configuration table lost its markers"
    assert found.group(1) == markdown_table(), "run `aftercare config --markdown` into the README"


def test_every_topic_is_in_the_readme() -> None:
    assert [role.value for role in TopicRole if f"| `{role.value}` |" not in README] == []
