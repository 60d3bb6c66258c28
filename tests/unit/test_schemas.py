"""The topic contract: what every schema in schemas/ promises upstream teams and analysts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.codec import DeadLetterError, SchemaSet
from pipeline.names import COPARTITIONED_ROLES, RECORD_OF_TOPIC, SCHEMA_NAMESPACE, TopicRole
from pipeline.resources import schemas_dir

FILES = sorted(schemas_dir().glob("*.avsc"))


def _named_types(schema: Any) -> list[dict[str, Any]]:
    """Every record and enum defined anywhere in ``schema``."""
    found = []
    if isinstance(schema, list):
        for branch in schema:
            found += _named_types(branch)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "enum"):
            found.append(schema)
        for field in schema.get("fields", []):
            found += _named_types(field["type"])
        for key in ("items", "values"):
            if key in schema:
                found += _named_types(schema[key])
    return found


def _fields(schema: Any) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{named['name']}.{field['name']}", field)
        for named in _named_types(schema)
        if named.get("type") == "record"
        for field in named["fields"]
    ]


def test_every_topic_has_exactly_one_current_schema(schemas: SchemaSet) -> None:
    assert sorted(RECORD_OF_TOPIC.values()) == schemas.names
    assert len(FILES) == len(TopicRole)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_namespace_is_versioned(path: Path) -> None:
    assert json.loads(path.read_text())["namespace"] == SCHEMA_NAMESPACE
    assert SCHEMA_NAMESPACE.rsplit(".", 1)[-1] == "v1"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_type_and_field_is_documented(path: Path) -> None:
    schema = json.loads(path.read_text())
    undocumented = [t["name"] for t in _named_types(schema) if not t.get("doc", "").strip()]
    undocumented += [name for name, field in _fields(schema) if not field.get("doc", "").strip()]
    assert undocumented == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_record_carries_event_id_customer_id_occurred_at(path: Path) -> None:
    fields = {field["name"]: field for field in json.loads(path.read_text())["fields"]}
    assert fields["event_id"]["type"] == "string"
    assert "string" in json.dumps(fields["customer_id"]["type"])
    assert fields["occurred_at"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}


@pytest.mark.parametrize("role", COPARTITIONED_ROLES, ids=str)
def test_what_the_worker_consumes_begins_with_event_id_customer_id_occurred_at(
    schemas: SchemaSet, role: TopicRole
) -> None:
    # The worker orders records by occurred_at read from this prefix, before decoding them.
    schema = schemas.current(RECORD_OF_TOPIC[role])
    fields = [(f["name"], f["type"]) for f in schema.parsed["fields"][:3]]
    assert fields == [
        ("event_id", "string"),
        ("customer_id", "string"),
        ("occurred_at", {"type": "long", "logicalType": "timestamp-millis"}),
    ]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_times_are_timestamp_millis_and_money_is_integer_minor_units(path: Path) -> None:
    for name, field in _fields(json.loads(path.read_text())):
        kind = json.dumps(field["type"])
        leaf = name.rsplit(".", 1)[-1]
        if leaf.endswith("_at") or leaf in ("eta", "source_timestamp"):
            assert "timestamp-millis" in kind, name
        if leaf.endswith("_minor"):
            assert '"long"' in kind, name
        assert "float" not in kind, f"{name}: no floating-point money"
        assert "double" not in kind, f"{name}: no floating-point money"


@pytest.mark.parametrize(
    ("role", "symbols"),
    [
        (
            TopicRole.PURCHASES,
            [
                "ORDER_PLACED",
                "PAYMENT_SUCCEEDED",
                "PAYMENT_FAILED",
                "ORDER_CANCELLED",
                "ORDER_REFUNDED",
            ],
        ),
        (
            TopicRole.SHIPMENTS,
            [
                "LABEL_CREATED",
                "SHIPPED",
                "OUT_FOR_DELIVERY",
                "DELIVERED",
                "DELAYED",
                "DELIVERY_FAILED",
                "RETURNED",
            ],
        ),
        (
            TopicRole.APP_USAGE,
            [
                "APP_OPENED",
                "FEATURE_USED",
                "SETUP_COMPLETED",
                "PUSH_TOKEN_REGISTERED",
                "FEEDBACK_SUBMITTED",
                "SUPPORT_REQUESTED",
            ],
        ),
    ],
)
def test_event_types_are_enums_of_the_design(
    schemas: SchemaSet, role: TopicRole, symbols: list[str]
) -> None:
    parsed = schemas.current(RECORD_OF_TOPIC[role]).parsed
    (type_field,) = [f for f in parsed["fields"] if f["name"] == "type"]
    assert type_field["type"]["type"] == "enum"
    assert type_field["type"]["symbols"] == symbols


def test_dead_letter_error_kinds_match_the_schema(schemas: SchemaSet) -> None:
    parsed = schemas.current(RECORD_OF_TOPIC[TopicRole.DEAD_LETTERS]).parsed
    (error,) = [f for f in parsed["fields"] if f["name"] == "error"]
    assert error["type"]["symbols"] == [kind.value for kind in DeadLetterError]
