"""The preferences service's pure parts: which record is current, and what a PATCH may change."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.clock import ManualClock
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.preferences.service import PreferencesView, _editor, default_record
from tests.samples import T0, preferences

SCHEMAS = SchemaSet.load()


def test_the_newest_record_by_event_time_is_current_and_a_tombstone_forgets() -> None:
    view = PreferencesView(Settings.from_env({}), SCHEMAS, ManualClock(T0))
    newer = preferences(occurred_at=T0, marketing_opt_in=True)
    view.apply("cust-1", newer)
    view.apply("cust-1", preferences(occurred_at=T0 - timedelta(days=1)))  # read later, older
    assert view.get("cust-1") is newer
    view.apply("cust-1", None)
    assert view.get("cust-1") is None


def test_a_patch_changes_only_what_it_names() -> None:
    record = preferences()
    record["consent"] = dict(record["consent"])
    _editor({"consent": {"push": False}, "unsubscribed": ["EMAIL", "EMAIL"]})(record)
    assert record["consent"] == {**preferences()["consent"], "push": False}
    assert record["unsubscribed"] == ["EMAIL"]
    assert record["quiet_hours"] == preferences()["quiet_hours"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({"email": "x@example.org"}, "unknown fields ['email']"),
        ({"consent": {"fax": True}}, "consent maps channels"),
        ({"consent": {"sms": "yes"}}, "consent maps channels"),
        ({"marketing_opt_in": 1}, "true or false"),
        ({"unsubscribed": ["FAX"]}, "unsubscribed lists channels"),
        ({"quiet_hours": {"start_minute": 1500, "end_minute": 0}}, "quiet_hours"),
        ({"timezone": 3}, "timezone is text"),
    ],
)
def test_a_patch_that_makes_no_sense_is_refused_before_anything_changes(
    body: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _editor(body)


def test_a_customer_nobody_published_has_the_schemas_defaults() -> None:
    record = default_record("new")
    assert record["consent"]["email"] is True
    assert record["unsubscribed"] == []
    assert record["marketing_opt_in"] is False


def test_a_record_the_worker_would_refuse_is_not_built_on() -> None:
    view = PreferencesView(Settings.from_env({}), SCHEMAS, ManualClock(T0))
    good = preferences(occurred_at=T0 - timedelta(days=2))
    bad = preferences(occurred_at=T0 - timedelta(days=1), timezone="Mars/Olympus_Mons")
    for record in (good, bad):
        view._take(b"cust-1", SCHEMAS.encode("io.aftercare.v1.PreferencesEvent", record))
    assert view.get("cust-1") == good
    assert view.refused == 1
    assert list(view.problems(bad))  # and a change that would produce it is refused (400)
