"""The channel contract (tests/component/test_channel_contract.py) for in-app, whose provider is the
broker: the inbox topic, on the real broker.

The same promises as every channel's: it delivers and the provider keeps the touchpoint id; what
the provider will never take is permanent; a provider away or not answering is retryable, never an
exception. The broker has no throttling answer to give (its quotas delay responses instead), and
no idempotency key across sends: a retried send is written twice with the same ``event_id``, the
touchpoint id, by which the app shows it once.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.channels.base import Delivered, Message, Permanent, Retryable
from pipeline.channels.inapp import InAppSender
from pipeline.clock import ManualClock
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.journeys.model import Channel, Priority
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.records import Dispatch
from tests.integration.kafkatools import end_offsets, wait_for_new
from tests.samples import T0, touchpoint_command

pytestmark = pytest.mark.integration

INBOX = RECORD_OF_TOPIC[TopicRole.INBOX]


def _message(**overrides: Any) -> Message:
    touchpoint = overrides.pop("touchpoint_id", f"tp_inapp_{uuid.uuid4().hex[:12]}")
    fields: dict[str, Any] = {
        "touchpoint_id": touchpoint,
        "customer_id": "cust-inbox",
        "journey": "need_help",
        "step": "offer",
        "order_id": "order-1",
        "priority": Priority.ENGAGEMENT,
        "channel": Channel.IN_APP,
        "address": "cust-inbox",
        "subject": "Need a hand?",
        "text": "Our five-minute setup guide is in the app.",
        "html": None,
        "locale": "en",
        "dispatch": Dispatch.of(touchpoint_command(touchpoint_id=touchpoint)),
    }
    fields.update(overrides)
    return Message(**fields)


async def test_in_app_delivers_to_the_inbox_and_keeps_the_touchpoint_id(
    kafka: Settings, producer: AIOKafkaProducer, schemas: SchemaSet
) -> None:
    topic = kafka.topic(TopicRole.INBOX)
    sender = InAppSender(producer, topic, schemas, ManualClock(T0))
    before = await end_offsets(kafka, topic)
    message = _message(touchpoint_id="tp_inapp_contract")
    outcome = await sender.send(message)
    assert isinstance(outcome, Delivered)
    assert outcome.provider_id.startswith(f"{topic}/")
    (record,) = await wait_for_new(kafka, topic, before, 1)
    assert record.key == b"cust-inbox"
    inbox = schemas.decode(record.value, INBOX).record
    assert (inbox["event_id"], inbox["touchpoint_id"]) == ("tp_inapp_contract", "tp_inapp_contract")
    assert (inbox["title"], inbox["body"]) == (message.subject, message.text)


async def test_a_message_larger_than_the_broker_takes_is_permanent(
    kafka: Settings, producer: AIOKafkaProducer, schemas: SchemaSet
) -> None:
    sender = InAppSender(producer, kafka.topic(TopicRole.INBOX), schemas, ManualClock(T0))
    outcome = await sender.send(_message(text="x" * (2 * 1024 * 1024)))  # over its 1 MiB
    assert isinstance(outcome, Permanent), outcome
    assert "too large" in outcome.reason


async def test_a_broker_that_does_not_answer_is_retryable_not_an_exception(
    kafka: Settings, schemas: SchemaSet
) -> None:
    # A topic the broker does not have (and will not create): the producer waits for it in vain.
    impatient = AIOKafkaProducer(request_timeout_ms=1000, **kafka.kafka_client_kwargs())
    await impatient.start()
    try:
        sender = InAppSender(impatient, f"absent-{uuid.uuid4().hex}", schemas, ManualClock(T0))
        outcome = await sender.send(_message())
    finally:
        await impatient.stop()
    assert isinstance(outcome, Retryable), outcome
    assert outcome.reason


async def test_a_retried_send_carries_the_touchpoint_id_by_which_the_app_shows_it_once(
    kafka: Settings, producer: AIOKafkaProducer, schemas: SchemaSet
) -> None:
    topic = kafka.topic(TopicRole.INBOX)
    sender = InAppSender(producer, topic, schemas, ManualClock(T0))
    before = await end_offsets(kafka, topic)
    message = _message()
    assert isinstance(await sender.send(message), Delivered)
    assert isinstance(await sender.send(message), Delivered)
    records = await wait_for_new(kafka, topic, before, 2)
    ids = {schemas.decode(r.value, INBOX).record["event_id"] for r in records}
    assert ids == {message.touchpoint_id}
    assert {r.key for r in records} == {b"cust-inbox"}  # one partition: in order for the app
