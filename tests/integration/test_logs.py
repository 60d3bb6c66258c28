"""The logs of a run, read as a log shipper and a privacy review would read them.

A worker and a senders process run at info level with ``AFTERCARE_LOG_FORMAT=json`` while customers
order, fail a payment (an SMS) and one upstream record is malformed (a dead letter whose reason
quotes the bad number). Every line each process wrote must be a JSON object a shipper can index,
and no line may carry a customer's email address, phone number, a provider token, a password, the
signing key or a signed link's token: the messages went out (the sandbox holds them), the logs
only say that they did.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.sandbox.server import Sandbox
from tests.integration.kafkatools import end_offsets, wait_for_new
from tests.integration.processes import ComponentProcess
from tests.samples import preferences, purchase
from tests.support import free_ports

pytestmark = pytest.mark.integration

CUSTOMERS = 8
KEY = "signing-key-of-the-log-test-0123456789"
API_TOKEN = "customer-api-token-of-the-log-test"


def _contact(n: int) -> tuple[str, str]:
    return f"logcheck.customer{n}@example.org", f"+4915112{n:06d}"


async def _send(
    producer: AIOKafkaProducer, schemas: SchemaSet, topics: Settings, role: TopicRole, record: dict
) -> None:
    await producer.send_and_wait(
        topics.topic(role),
        value=schemas.encode(RECORD_OF_TOPIC[role], record),
        key=record["customer_id"].encode(),
    )


async def test_logs_are_json_lines_without_personal_data_or_secrets(
    topics: Settings,
    sandbox: Sandbox,
    producer: AIOKafkaProducer,
    schemas: SchemaSet,
    tmp_path: Path,
) -> None:
    worker_port, senders_port = free_ports(2)
    config = sandbox.config
    common = {
        "AFTERCARE_TOPIC_PREFIX": topics.topic_prefix,
        "AFTERCARE_INPUT_PARTITIONS": str(topics.input_partitions),
        "AFTERCARE_OUTPUT_PARTITIONS": str(topics.output_partitions),
        "AFTERCARE_SESSION_TIMEOUT_SECONDS": "6",
        "AFTERCARE_LOG_FORMAT": "json",
        "AFTERCARE_LOG_LEVEL": "info",
        "AFTERCARE_PREFERENCES_KEY": KEY,
        "AFTERCARE_CUSTOMER_API_TOKEN": API_TOKEN,
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
    }
    worker = ComponentProcess(
        "worker",
        {
            **common,
            "AFTERCARE_WORKER_PORT": str(worker_port),
            "AFTERCARE_STATE_DIR": str(tmp_path / "state"),
        },
        tmp_path / "worker.log",
        worker_port,
    )
    senders = ComponentProcess(
        "senders",
        {**common, "AFTERCARE_SENDERS_PORT": str(senders_port)},
        tmp_path / "senders.log",
        senders_port,
    )
    processes = [worker, senders]
    dead_letters = topics.topic(TopicRole.DEAD_LETTERS)
    letters_before = await end_offsets(topics, dead_letters)
    for process in processes:
        process.start()
    try:
        for process in processes:
            await process.wait_ready()
        now = datetime.now(UTC)
        for n in range(CUSTOMERS):
            email, phone = _contact(n)
            customer = f"cust-log-{n}"
            await _send(
                producer,
                schemas,
                topics,
                TopicRole.PREFERENCES,
                preferences(
                    event_id=f"log-prefs-{n}",
                    customer_id=customer,
                    occurred_at=now - timedelta(minutes=5),
                    email=email,
                    phone=phone,
                    quiet_hours=None,
                ),
            )
            contact = {"email": email, "phone": phone, "locale": "en-GB", "timezone": "UTC"}
            await _send(
                producer,
                schemas,
                topics,
                TopicRole.PURCHASES,
                purchase(
                    event_id=f"log-order-{n}",
                    customer_id=customer,
                    order_id=f"log-o-{n}",
                    occurred_at=now - timedelta(minutes=1),
                    contact=contact,
                ),
            )
            await _send(
                producer,
                schemas,
                topics,
                TopicRole.PURCHASES,
                purchase(
                    event_id=f"log-payment-{n}",
                    customer_id=customer,
                    order_id=f"log-o-{n}",
                    occurred_at=now,
                    type="PAYMENT_FAILED",
                    reason="card declined by the bank",
                    contact=contact,
                ),
            )
        bad_phone = "+10000000"
        await _send(
            producer,
            schemas,
            topics,
            TopicRole.PURCHASES,
            purchase(
                event_id="log-bad",
                customer_id="cust-log-bad",
                order_id="log-o-bad",
                occurred_at=now,
                contact={"email": "bad.number@example.org", "phone": bad_phone},
            ),
        )
        await wait_for_new(topics, dead_letters, letters_before, 1, timeout=60)
        # Each customer's confirmation (email, in-app) and payment alerts (SMS, email) went out.
        by_channel: dict[str, int] = {}
        async with httpx.AsyncClient() as client:
            for _ in range(450):  # polling the sandbox's outbox, up to 90 s
                messages = (await client.get(f"{sandbox.http_url}/_sandbox/messages")).json()
                by_channel = {c: sum(m["channel"] == c for m in messages) for c in ("email", "sms")}
                if by_channel["email"] >= 2 * CUSTOMERS and by_channel["sms"] >= CUSTOMERS:
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"not all went out: {by_channel}\n{senders.tail()}")
    finally:
        for process in reversed(processes):
            await process.stopped()

    forbidden = {
        config.sms_auth_token,
        config.whatsapp_token,
        config.push_token,
        config.webhook_secret,
        config.smtp_password,
        KEY,
        API_TOKEN,
        bad_phone,
        "bad.number@example.org",
    }
    for n in range(CUSTOMERS):
        forbidden.update(_contact(n))
    for process in processes:
        text = process.log_path.read_text()
        lines = [line for line in text.splitlines() if line and not line.startswith("===== ")]
        assert len(lines) > 5, f"{process.command} logged almost nothing:\n{text}"
        for line in lines:
            record = json.loads(line)  # every line: one JSON object, nothing else on stderr
            assert {"time", "level", "logger", "process", "message"} <= record.keys(), line
        leaks = sorted(secret for secret in forbidden if secret in text)
        assert leaks == [], f"{process.command} logged {leaks}"
        # The digits of a number, however it was written; a signed link's token.
        for n in range(CUSTOMERS):
            assert _contact(n)[1][1:] not in text
        assert "0000000" not in text, "the bad number, as libphonenumber formats it (+1 0000000)"
        assert not re.search(r"token=[\w.-]{20,}", text), process.command
    # The worker said why the record was refused, with the number masked.
    assert any(
        "dead-lettered" in json.loads(line)["message"] and "+10***00" in json.loads(line)["message"]
        for line in worker.log_path.read_text().splitlines()
        if line.startswith("{")
    )
