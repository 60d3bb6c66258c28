"""The channel contract for in-app, whose provider is the broker: the inbox topic."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.channels.base import Delivered, Message
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


async def test_in_app_delivers_to_the_inbox_and_keeps_the_touchpoint_id(
    kafka: Settings, producer: AIOKafkaProducer, schemas: SchemaSet
) -> None:
    topic = kafka.topic(TopicRole.INBOX)
    sender = InAppSender(producer, topic, schemas, ManualClock(T0))
    before = await end_offsets(kafka, topic)
    message = Message(
        touchpoint_id="tp_inapp_contract",
        customer_id="cust-inbox",
        journey="need_help",
        step="offer",
        order_id="order-1",
        priority=Priority.ENGAGEMENT,
        channel=Channel.IN_APP,
        address="cust-inbox",
        subject="Need a hand?",
        text="Our five-minute setup guide is in the app.",
        html=None,
        locale="en",
        dispatch=Dispatch.of(touchpoint_command(touchpoint_id="tp_inapp_contract")),
    )
    outcome = await sender.send(message)
    assert isinstance(outcome, Delivered)
    assert outcome.provider_id.startswith(f"{topic}/")
    (record,) = await wait_for_new(kafka, topic, before, 1)
    assert record.key == b"cust-inbox"
    inbox = schemas.decode(record.value, RECORD_OF_TOPIC[TopicRole.INBOX]).record
    assert (inbox["event_id"], inbox["touchpoint_id"]) == ("tp_inapp_contract", "tp_inapp_contract")
    assert (inbox["title"], inbox["body"]) == (message.subject, message.text)
