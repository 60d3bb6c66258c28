"""Messages per second per channel into the provider sandbox, with pooled connections.

    .venv/bin/python -m bench.bench_channels [messages per channel] [concurrency]

Each channel sends the given number of distinct messages, ``concurrency`` at a time, over its
pooled client (SMTP connection pool; one shared httpx pool for the HTTP providers; the broker for
in-app), all on this machine. Prints a table and writes bench/results/channels.json. Part 5 of
``make bench`` (:func:`run`: 500 messages per channel, 32 at a time).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.common import quick
from bench.compat import message_command
from pipeline import localkafka
from pipeline.channels import ChannelSender, Delivered, Message, build_senders, http_client
from pipeline.clock import SystemClock
from pipeline.codec import SchemaSet
from pipeline.journeys.model import Channel, Priority
from pipeline.sandbox.server import Sandbox, SandboxConfig
from pipeline.topics import ensure_topics
from tests.samples import touchpoint_command
from tests.support import delete_topics_with_prefix, settings_for

RESULTS = Path(__file__).with_name("results")
MESSAGES_PER_CHANNEL = 500  # in make bench: enough for a steady rate, a few seconds a channel
ADDRESSES = {
    Channel.EMAIL: "ada@example.org",
    Channel.SMS: "+4915112345678",
    Channel.WHATSAPP: "+4915112345678",
    Channel.PUSH: "device-token-1",
    Channel.IN_APP: "cust-1",
    Channel.WEBHOOK: "support",
}


async def _measure(
    channel: Channel, sender: ChannelSender, count: int, concurrency: int
) -> tuple[int, float]:
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> bool:
        touchpoint = f"tp_{uuid.uuid4().hex}"
        message = Message(
            touchpoint_id=touchpoint,
            customer_id=f"cust-{n}",
            journey="order_confirmation",
            step="confirm",
            order_id=f"order-{n}",
            priority=Priority.TRANSACTIONAL,
            channel=channel,
            address=ADDRESSES[channel],
            subject="Your order",
            text="Thank you for your order. " * 8,
            html="<p>Thank you for your order.</p>" * 8,
            locale="en",
            **message_command(touchpoint_command(touchpoint_id=touchpoint)),
        )
        async with gate:
            return isinstance(await sender.send(message), Delivered)

    started = time.perf_counter()
    delivered = sum(await asyncio.gather(*(one(n) for n in range(count))))
    return delivered, time.perf_counter() - started


async def measure(count: int, concurrency: int) -> dict[str, Any]:
    """Messages per second (and how many were delivered) for every channel."""
    folder = Path(tempfile.mkdtemp(prefix="aftercare-bench-"))
    sandbox = Sandbox(SandboxConfig(http_port=0, smtp_port=0, db_path=folder / "outbox.sqlite"))
    await sandbox.start()
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    config = sandbox.config
    settings = settings_for(
        prefix,
        AFTERCARE_SMTP_PORT=str(sandbox.smtp_port),
        AFTERCARE_SMTP_USERNAME=config.smtp_username,
        AFTERCARE_SMTP_PASSWORD=config.smtp_password,
        AFTERCARE_SMTP_POOL_SIZE=str(min(concurrency, 16)),
        AFTERCARE_SMS_BASE_URL=f"{sandbox.http_url}/twilio",
        AFTERCARE_WHATSAPP_BASE_URL=f"{sandbox.http_url}/whatsapp",
        AFTERCARE_PUSH_BASE_URL=f"{sandbox.http_url}/fcm",
        AFTERCARE_WEBHOOK_URL=f"{sandbox.http_url}/webhook/support",
    )
    if settings.uses_local_broker:
        localkafka.start(settings.local_broker)
    await ensure_topics(settings)
    producer = AIOKafkaProducer(acks="all", linger_ms=2, **settings.kafka_client_kwargs())
    await producer.start()
    client = http_client(connections=concurrency)
    senders = build_senders(settings, client, producer, SchemaSet.load(), SystemClock())
    result: dict[str, Any] = {"messages_per_channel": count, "concurrency": concurrency}
    try:
        for channel, sender in senders.items():
            delivered, elapsed = await _measure(channel, sender, count, concurrency)
            result[f"{channel.value.lower()}_per_s"] = round(delivered / elapsed)
            result[f"{channel.value.lower()}_delivered"] = delivered
    finally:
        for sender in senders.values():
            await sender.close()
        await client.aclose()
        await producer.stop()
        await sandbox.stop()
        try:
            await delete_topics_with_prefix(settings, prefix)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    result["cores"] = os.cpu_count() or 0
    return result


async def run(short: bool | None = None) -> dict[str, Any]:
    """Part 5 of ``make bench``: the figures of :func:`measure`, named ``senders_*``."""
    short = quick() if short is None else short
    result = await measure(100 if short else MESSAGES_PER_CHANNEL, 32)
    return {f"senders_{key}" if key != "cores" else key: value for key, value in result.items()}


async def main(count: int, concurrency: int) -> dict[str, Any]:
    result = await measure(count, concurrency)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "channels.json").write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():
        print(f"{key:24} {value:>10,}")
    return result


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(arguments or [1000]), *([] if len(arguments) > 1 else [32])))
