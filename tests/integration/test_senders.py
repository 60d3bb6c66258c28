"""The senders on the real broker with the provider sandbox: once, no matter what.

A real ``aftercare senders`` process consumes ``dispatch`` and delivers through the sandbox over
real sockets. Every dispatch record must end in exactly one ``deliveries`` record, and the sandbox
must accept each touchpoint once: through provider outages, a 429 storm, permanent failures that
fall back to the next channel, duplicated dispatch records, and a SIGKILL mid-stream.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.clock import SystemClock
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.sandbox.server import Sandbox
from tests.integration.kafkatools import end_offsets, read_range, wait_for_new
from tests.integration.processes import ComponentProcess
from tests.samples import touchpoint_command
from tests.support import free_ports

pytestmark = pytest.mark.integration

DISPATCH = RECORD_OF_TOPIC[TopicRole.DISPATCH]
DELIVERY = RECORD_OF_TOPIC[TopicRole.DELIVERIES]
INBOX = RECORD_OF_TOPIC[TopicRole.INBOX]


def _senders(topics: Settings, sandbox: Sandbox, tmp_path: Path, **env: str) -> ComponentProcess:
    (port,) = free_ports(1)
    config = sandbox.config
    return ComponentProcess(
        "senders",
        {
            "AFTERCARE_TOPIC_PREFIX": topics.topic_prefix,
            "AFTERCARE_INPUT_PARTITIONS": str(topics.input_partitions),
            "AFTERCARE_OUTPUT_PARTITIONS": str(topics.output_partitions),
            "AFTERCARE_SENDERS_PORT": str(port),
            "AFTERCARE_SESSION_TIMEOUT_SECONDS": "6",
            "AFTERCARE_SMTP_HOST": "127.0.0.1",
            "AFTERCARE_SMTP_PORT": str(sandbox.smtp_port),
            "AFTERCARE_SMTP_USERNAME": config.smtp_username,
            "AFTERCARE_SMTP_PASSWORD": config.smtp_password,
            "AFTERCARE_SMS_BASE_URL": f"{sandbox.http_url}/twilio",
            "AFTERCARE_SMS_ACCOUNT_SID": config.sms_account_sid,
            "AFTERCARE_SMS_AUTH_TOKEN": config.sms_auth_token,
            "AFTERCARE_WHATSAPP_BASE_URL": f"{sandbox.http_url}/whatsapp",
            "AFTERCARE_WHATSAPP_TOKEN": config.whatsapp_token,
            "AFTERCARE_PUSH_BASE_URL": f"{sandbox.http_url}/fcm",
            "AFTERCARE_PUSH_TOKEN": config.push_token,
            "AFTERCARE_WEBHOOK_URL": f"{sandbox.http_url}/webhook/support",
            "AFTERCARE_WEBHOOK_SECRET": config.webhook_secret,
            # Short enough for a test, long enough to ride out the outages below.
            "AFTERCARE_SENDER_MAX_ATTEMPTS": "30",
            "AFTERCARE_SENDER_MAX_SECONDS_PER_CHANNEL": "60",
            **env,
        },
        tmp_path / "senders.log",
        port,
    )


def _command(
    channels: list[str],
    journey: str = "shipped",
    step: str = "tracking",
    expires_in: timedelta = timedelta(hours=1),
    **recipient: Any,
) -> dict[str, Any]:
    now = SystemClock().now()
    touchpoint = f"tp_{uuid.uuid4().hex[:20]}"
    return touchpoint_command(
        event_id=touchpoint,
        touchpoint_id=touchpoint,
        customer_id=f"cust-{uuid.uuid4().hex[:6]}",
        occurred_at=now,
        journey=journey,
        step=step,
        template=f"{journey}.{step}",
        channels=channels,
        recipient={
            "email": "ada@example.org",
            "phone": "+4915112345678",
            "push_token": "device-token-1",
            "locale": "en",
            "timezone": "Europe/Berlin",
            **recipient,
        },
        trigger_occurred_at=now - timedelta(seconds=2),
        due_at=now,
        expires_at=now + expires_in,
    )


async def _dispatch(
    producer: AIOKafkaProducer, schemas: SchemaSet, topics: Settings, commands: list[dict[str, Any]]
) -> None:
    for command in commands:
        await producer.send_and_wait(
            topics.topic(TopicRole.DISPATCH),
            value=schemas.encode(DISPATCH, command),
            key=command["customer_id"].encode(),
        )


async def _outcomes(
    topics: Settings, schemas: SchemaSet, count: int, timeout: float = 120
) -> list[dict[str, Any]]:
    records = await wait_for_new(
        topics, topics.topic(TopicRole.DELIVERIES), {}, count, timeout=timeout
    )
    return [schemas.decode(m.value, DELIVERY).record for m in records]


async def _run(
    topics: Settings,
    sandbox: Sandbox,
    producer: AIOKafkaProducer,
    schemas: SchemaSet,
    tmp_path: Path,
    commands: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Start the senders, dispatch ``commands``, wait for their outcomes, stop cleanly."""
    senders = _senders(topics, sandbox, tmp_path)
    senders.start()
    try:
        await senders.wait_ready()
        await _dispatch(producer, schemas, topics, commands)
        return await _outcomes(topics, schemas, len(commands))
    finally:
        assert await senders.stopped() == 0, senders.tail()


async def _all_outcomes(topics: Settings, schemas: SchemaSet) -> list[dict[str, Any]]:
    """Everything on deliveries now (call it once the senders have stopped)."""
    end = await end_offsets(topics, topics.topic(TopicRole.DELIVERIES))
    records = await read_range(topics, topics.topic(TopicRole.DELIVERIES), {}, end)
    return [schemas.decode(m.value, DELIVERY).record for m in records]


async def _accepted(sandbox: Sandbox) -> Counter[str]:
    async with httpx.AsyncClient() as client:
        messages = (await client.get(f"{sandbox.http_url}/_sandbox/messages")).json()
    return Counter(m["touchpoint_id"] for m in messages)


async def _fault(sandbox: Sandbox, channel: str, **fields: Any) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.put(f"{sandbox.http_url}/_sandbox/faults/{channel}", json=fields)
        assert answer.status_code == 200, answer.text


async def test_every_dispatch_ends_in_exactly_one_outcome(
    topics: Settings,
    sandbox: Sandbox,
    producer: AIOKafkaProducer,
    schemas: SchemaSet,
    tmp_path: Path,
) -> None:
    commands = [
        _command(["EMAIL"]),
        _command(["SMS", "EMAIL"]),
        _command(["WHATSAPP"]),
        _command(["PUSH", "EMAIL"]),
        _command(["IN_APP"], journey="order_confirmation", step="confirm"),
        _command(["WEBHOOK"], journey="support_handoff", step="task"),
        _command(["SMS", "EMAIL"], phone="+1"),  # the provider rejects it: falls back to email
        _command(["PUSH", "EMAIL"], push_token="unregistered-device"),  # app removed: email
        _command(["EMAIL"], expires_in=-timedelta(minutes=1)),  # too late
    ]
    duplicate = commands[0]
    senders = _senders(topics, sandbox, tmp_path)
    senders.start()
    try:
        await senders.wait_ready()
        await _dispatch(producer, schemas, topics, [*commands, duplicate])
        await _outcomes(topics, schemas, len(commands))
    finally:
        assert await senders.stopped() == 0, senders.tail()  # nothing left in flight
    outcomes = await _all_outcomes(topics, schemas)
    assert len(outcomes) == len(commands)  # exactly one per touchpoint, the duplicate included
    by_id = {o["touchpoint_id"]: o for o in outcomes}
    assert set(by_id) == {c["touchpoint_id"] for c in commands}
    statuses = [
        (by_id[c["touchpoint_id"]]["status"], by_id[c["touchpoint_id"]]["channel"])
        for c in commands
    ]
    assert statuses == [
        ("DELIVERED", "EMAIL"),
        ("DELIVERED", "SMS"),
        ("DELIVERED", "WHATSAPP"),
        ("DELIVERED", "PUSH"),
        ("DELIVERED", "IN_APP"),
        ("DELIVERED", "WEBHOOK"),
        ("DELIVERED", "EMAIL"),
        ("DELIVERED", "EMAIL"),
        ("EXPIRED", None),
    ]
    accepted = await _accepted(sandbox)
    assert max(accepted.values()) == 1
    assert set(accepted) == {c["touchpoint_id"] for c in commands[:4] + commands[5:8]}
    delivered = by_id[commands[0]["touchpoint_id"]]
    assert delivered["provider_message_id"]
    assert delivered["accepted_at"] >= delivered["dispatched_at"]
    inbox = await wait_for_new(topics, topics.topic(TopicRole.INBOX), {}, 1)
    assert (
        schemas.decode(inbox[0].value, INBOX).record["touchpoint_id"]
        == commands[4]["touchpoint_id"]
    )


async def test_smtp_down_for_a_while_then_back_delivers_everything_once(
    topics: Settings,
    sandbox: Sandbox,
    producer: AIOKafkaProducer,
    schemas: SchemaSet,
    tmp_path: Path,
) -> None:
    await _fault(sandbox, "email", outage_until=time.time() + 4)
    commands = [_command(["EMAIL"]) for _ in range(20)]
    outcomes = await _run(topics, sandbox, producer, schemas, tmp_path, commands)
    assert {o["status"] for o in outcomes} == {"DELIVERED"}
    assert max(o["attempts"] for o in outcomes) > 1  # they did meet the outage
    accepted = await _accepted(sandbox)
    assert sorted(accepted) == sorted(c["touchpoint_id"] for c in commands)
    assert set(accepted.values()) == {1}


async def test_a_429_storm_is_ridden_out(
    topics: Settings,
    sandbox: Sandbox,
    producer: AIOKafkaProducer,
    schemas: SchemaSet,
    tmp_path: Path,
) -> None:
    await _fault(sandbox, "sms", throttle_rate=0.6, retry_after_s=1)
    commands = [_command(["SMS"]) for _ in range(30)]
    outcomes = await _run(topics, sandbox, producer, schemas, tmp_path, commands)
    assert {o["status"] for o in outcomes} == {"DELIVERED"}, [
        (o["status"], o["detail"]) for o in outcomes if o["status"] != "DELIVERED"
    ]
    assert sum(o["attempts"] for o in outcomes) > len(commands)  # throttled, and retried
    accepted = await _accepted(sandbox)
    assert set(accepted.values()) == {1}
    assert len(accepted) == len(commands)


async def test_a_sigkill_mid_stream_loses_nothing_and_sends_nothing_twice(
    topics: Settings,
    sandbox: Sandbox,
    producer: AIOKafkaProducer,
    schemas: SchemaSet,
    tmp_path: Path,
) -> None:
    await _fault(sandbox, "email", latency_ms=150)  # a slow provider: plenty in flight at the kill
    await _fault(sandbox, "sms", latency_ms=150)
    commands = [_command(["EMAIL"] if n % 2 else ["SMS", "EMAIL"]) for n in range(80)]
    senders = _senders(topics, sandbox, tmp_path)
    senders.start()
    try:
        await senders.wait_ready()
        await _dispatch(producer, schemas, topics, commands)
        await wait_for_new(topics, topics.topic(TopicRole.DELIVERIES), {}, 15, timeout=60)
        await asyncio.to_thread(senders.kill)
        senders.start()
        await senders.wait_ready()
        await wait_for_new(
            topics, topics.topic(TopicRole.DELIVERIES), {}, len(commands), timeout=120
        )
    finally:
        assert await senders.stopped() == 0, senders.tail()
    end = await end_offsets(topics, topics.topic(TopicRole.DELIVERIES))
    outcomes = [
        schemas.decode(m.value, DELIVERY).record
        for m in await wait_for_new(
            topics, topics.topic(TopicRole.DELIVERIES), {}, sum(end.values())
        )
    ]
    per_touchpoint = Counter(o["touchpoint_id"] for o in outcomes)
    assert set(per_touchpoint) == {c["touchpoint_id"] for c in commands}
    twice = sorted(
        f"{o['touchpoint_id']} {o['occurred_at'].time()} {o['channel']} {o['provider_message_id']}"
        for o in outcomes
        if per_touchpoint[o["touchpoint_id"]] > 1
    )
    assert not twice, "\n".join(twice[:12])
    assert {o["status"] for o in outcomes} == {"DELIVERED"}
    accepted = await _accepted(sandbox)
    assert set(accepted) == {c["touchpoint_id"] for c in commands}
    assert set(accepted.values()) == {1}
