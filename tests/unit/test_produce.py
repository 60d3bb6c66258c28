"""Which topic each line of `aftercare produce` goes to, and the summary it ends with."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from pipeline.names import TopicRole
from pipeline.produce import Refuse, Send, Skip, Tally, route, summary

P, S, A, PR = TopicRole.PURCHASES, TopicRole.SHIPMENTS, TopicRole.APP_USAGE, TopicRole.PREFERENCES
TOPICS = {name: role for role in TopicRole for name in (role.value, f"demo-1.{role.value}")}
RECORD = {"event_id": "e-1", "customer_id": "c-1"}


def envelope(topic: Any, record: Any = RECORD, **more: Any) -> str:
    return json.dumps({"topic": topic, "record": record, **more})


@pytest.mark.parametrize(
    ("line", "topic", "expected"),
    [
        (envelope("purchases"), None, Send(P, RECORD)),
        (envelope("app-usage"), None, Send(A, RECORD)),
        (envelope("demo-1.shipments"), None, Send(S, RECORD)),  # a full topic name
        (envelope("preferences"), PR, Send(PR, RECORD)),
        (envelope("purchases"), S, Skip(P)),
        (json.dumps(RECORD), S, Send(S, RECORD)),  # a bare record, as before envelopes
        (envelope("dispatch"), TopicRole.DISPATCH, Send(TopicRole.DISPATCH, RECORD)),
        (envelope("shipments").encode(), None, Send(S, RECORD)),  # stdin's lines come as bytes
    ],
)
def test_a_line_goes_to_its_topic_or_is_skipped(
    line: str | bytes, topic: TopicRole | None, expected: Send | Skip
) -> None:
    assert route(line, topic=topic, topics=TOPICS) == expected


@pytest.mark.parametrize(
    ("line", "topic", "words"),
    [
        (json.dumps(RECORD), None, "a bare record, and no TOPIC to send it to: give one"),
        ("{not json", None, "not JSON"),
        ("{not json", P, "not JSON"),
        ("[1, 2]", None, "not a JSON object but list: expected an envelope"),
        (b'{"topic": "purchases", "record": "\xff"}', None, "not JSON: 'utf-8' codec can't"),
        (envelope("orders"), None, "envelope topic 'orders' is not an input topic (purchases, "),
        (envelope("orders"), P, "envelope topic 'orders' is not one of Aftercare's topics"),
        (envelope("dispatch"), None, "'dispatch' is not an input topic"),
        (envelope(["purchases"]), None, "is not an input topic"),
        (envelope("purchases", offset=3), None, "this line also has ['offset']"),
    ],
)
def test_a_line_that_cannot_be_routed_is_refused_with_the_reason(
    line: str | bytes, topic: TopicRole | None, words: str
) -> None:
    routed = route(line, topic=topic, topics=TOPICS)
    assert isinstance(routed, Refuse)
    assert words in routed.reason


NAMES = {role: f"demo-1.{role.value}" for role in TopicRole}


@pytest.mark.parametrize(
    ("tally", "topic", "shown"),
    [
        (Tally(Counter({P: 120}), skipped=380), P,
         "sent 120 record(s) to demo-1.purchases; skipped 380 of other topics"),
        (Tally(Counter({S: 1}), refused=3), S, "sent 1 record(s) to demo-1.shipments; refused 3"),
        (Tally(Counter({P: 2, PR: 1, S: 3})), None,
         "sent 6 record(s): 2 to demo-1.purchases, 3 to demo-1.shipments, "
         "1 to demo-1.preferences"),
        (Tally(refused=1), None, "sent 0 record(s); refused 1"),
    ],
)  # fmt: skip
def test_the_summary_counts_what_was_sent_skipped_and_refused(
    tally: Tally, topic: TopicRole | None, shown: str
) -> None:
    assert summary(tally, topic, NAMES) == shown
