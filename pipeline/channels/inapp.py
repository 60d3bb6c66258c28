"""In-app messages: a record on the ``inbox`` topic, which the app backend reads.

Kafka is the provider here: the message is delivered when the broker acknowledges it. The record's
``event_id`` is the touchpoint id, so the app shows a message written twice only once. As for every
channel: a broker away or slow to answer is retryable; a message it will never take (larger than
it accepts) is permanent.
"""

from __future__ import annotations

from aiokafka.errors import MessageSizeTooLargeError

from pipeline.channels.base import Delivered, Message, Permanent, Retryable, SendResult
from pipeline.clock import Clock
from pipeline.codec import EncodeError, SchemaSet
from pipeline.journeys.model import Channel
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.records import Publisher

INBOX = RECORD_OF_TOPIC[TopicRole.INBOX]


class InAppSender:
    channel = Channel.IN_APP

    def __init__(self, publisher: Publisher, topic: str, schemas: SchemaSet, clock: Clock) -> None:
        self.provider = f"inbox:{topic}"
        self._publisher = publisher
        self._topic = topic
        self._schemas = schemas
        self._clock = clock

    async def send(self, message: Message) -> SendResult:
        now = self._clock.now()
        record = {
            "event_id": message.touchpoint_id,
            "customer_id": message.customer_id,
            "occurred_at": now,
            "touchpoint_id": message.touchpoint_id,
            "journey": message.journey,
            "step": message.step,
            "order_id": message.order_id,
            "title": message.subject or "",
            "body": message.text,
            "locale": message.locale,
            "expires_at": message.dispatch.expires_at,
        }
        try:
            value = self._schemas.encode(INBOX, record)
        except EncodeError as error:  # it will never be a message of the inbox
            return Permanent(f"{self.provider}: {error}")
        try:
            metadata = await self._publisher.send_and_wait(
                self._topic, value=value, key=message.customer_id.encode("utf-8")
            )
        except MessageSizeTooLargeError as error:  # the broker will never take it
            return Permanent(f"{self.provider}: the message is too large for the broker: {error}")
        except Exception as error:  # aiokafka's errors: the broker is away; try again later
            return Retryable(f"{self.provider}: {type(error).__name__}: {error}")
        partition = getattr(metadata, "partition", "?")
        offset = getattr(metadata, "offset", "?")
        return Delivered(f"{self._topic}/{partition}/{offset}", now)

    async def close(self) -> None:
        return None
