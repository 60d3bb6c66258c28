"""The preferences service on the real broker: a click becomes a complete preferences record.

First the service alone, as a real ``aftercare preferences-api`` process reading and writing the
compacted ``preferences`` topic. Then the whole way, on an accelerated clock: a real engagement
email from the sandbox's outbox, its ``List-Unsubscribe`` header, the one-click POST a mail client
sends, and the worker suppressing the next engagement touchpoint while receipts still go.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.analytics.customer import as_json, as_text, look_up
from pipeline.clock import AcceleratedClock
from pipeline.codec import SchemaSet
from pipeline.config import Settings
from pipeline.journeys.model import Priority
from pipeline.journeysfile import load_journeys
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.preferences.tokens import Signer
from pipeline.sandbox.server import Sandbox
from tests.integration.kafkatools import end_offsets, read_range, wait_for_new
from tests.integration.processes import ComponentProcess, worker_process
from tests.samples import preferences, purchase
from tests.support import free_ports

pytestmark = pytest.mark.integration

KEY = "test-preferences-key"
SIGNER = Signer(KEY)
PREFERENCES = RECORD_OF_TOPIC[TopicRole.PREFERENCES]
DELIVERY = RECORD_OF_TOPIC[TopicRole.DELIVERIES]


def _component(
    command: str, topics: Settings, tmp_path: Path, port_variable: str, **env: str
) -> ComponentProcess:
    (port,) = free_ports(1)
    return ComponentProcess(
        command,
        {
            "AFTERCARE_TOPIC_PREFIX": topics.topic_prefix,
            "AFTERCARE_INPUT_PARTITIONS": str(topics.input_partitions),
            "AFTERCARE_OUTPUT_PARTITIONS": str(topics.output_partitions),
            "AFTERCARE_SESSION_TIMEOUT_SECONDS": "6",
            "AFTERCARE_PREFERENCES_KEY": KEY,
            port_variable: str(port),
            **env,
        },
        tmp_path / f"{command}.log",
        port,
    )


async def _publish(
    producer: AIOKafkaProducer, topics: Settings, role: TopicRole, record: dict[str, Any]
) -> None:
    schemas = SchemaSet.load()
    await producer.send_and_wait(
        topics.topic(role),
        schemas.encode(RECORD_OF_TOPIC[role], record),
        key=record["customer_id"].encode(),
    )


async def _preferences_after(
    topics: Settings, start: dict[Any, int], count: int
) -> list[dict[str, Any]]:
    schemas = SchemaSet.load()
    found = await wait_for_new(
        topics, topics.topic(TopicRole.PREFERENCES), start, count, timeout=30
    )
    return [schemas.decode(m.value, PREFERENCES).record for m in found]


async def test_a_click_publishes_the_whole_record_once_and_a_bad_token_changes_nothing(
    topics: Settings, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    upstream = preferences(
        customer_id="ada",
        event_id="upstream-1",
        occurred_at=datetime.now(UTC) - timedelta(days=1),
        marketing_opt_in=True,
    )
    await _publish(producer, topics, TopicRole.PREFERENCES, upstream)
    api = _component("preferences-api", topics, tmp_path, "AFTERCARE_PREFERENCES_PORT")
    start = await end_offsets(topics, topics.topic(TopicRole.PREFERENCES))
    api.start()
    try:
        await api.wait_ready()
        base = f"http://127.0.0.1:{api.port}"
        later = datetime.now(UTC) + timedelta(days=30)
        email = SIGNER.sign("ada", "email", later)
        async with httpx.AsyncClient(base_url=base) as client:
            # The page changes nothing: scanners follow links.
            page = await client.get("/unsubscribe", params={"token": email})
            assert page.status_code == 200
            assert 'method="post"' in page.text
            assert "List-Unsubscribe" in page.text
            # Forged, altered, expired, a token for another purpose: 403, nothing published.
            for bad in (
                email[:-2] + ("AA" if not email.endswith("AA") else "BB"),
                Signer("another key").sign("ada", "email", later),
                SIGNER.sign("ada", "email", datetime.now(UTC) - timedelta(seconds=1)),
                SIGNER.sign("ada", "preferences", later),
            ):
                refused = await client.post(
                    "/unsubscribe", params={"token": bad}, data={"List-Unsubscribe": "One-Click"}
                )
                assert refused.status_code == 403, refused.text
            # The one-click POST, as a mail client sends it: no cookie, the RFC 8058 body.
            click = await client.post(
                "/unsubscribe", params={"token": email}, data={"List-Unsubscribe": "One-Click"}
            )
            assert click.status_code == 200
            assert "no more tips, offers or reminders by email" in click.text
            again = await client.post(
                "/unsubscribe", params={"token": email}, data={"List-Unsubscribe": "One-Click"}
            )
            assert again.status_code == 200
            (published,) = await _preferences_after(topics, start, 1)
            assert published["unsubscribed"] == ["EMAIL"]
            for field in ("consent", "marketing_opt_in", "quiet_hours", "timezone", "locale",
                          "email", "phone"):  # fmt: skip
                assert published[field] == upstream[field], field
            assert published["occurred_at"] > upstream["occurred_at"]

            # The API: the customer's own preferences, with a token for them and nobody else.
            mine = {"Authorization": f"Bearer {SIGNER.sign('ada', 'preferences', later)}"}
            shown = await client.get("/v1/customers/ada/preferences", headers=mine)
            assert shown.status_code == 200
            assert shown.json()["unsubscribed"] == ["EMAIL"]
            assert "email" not in shown.json()  # the address is not shown
            other = await client.get("/v1/customers/bob/preferences", headers=mine)
            assert other.status_code == 403
            scoped = {"Authorization": f"Bearer {email}"}
            assert (
                await client.get("/v1/customers/ada/preferences", headers=scoped)
            ).status_code == 403
            bad_body = await client.patch(
                "/v1/customers/ada/preferences", headers=mine, json={"consent": {"fax": True}}
            )
            assert bad_body.status_code == 400
            nowhere = await client.patch(
                "/v1/customers/ada/preferences", headers=mine, json={"timezone": "Mars/Olympus"}
            )
            assert nowhere.status_code == 400  # the worker would dead-letter it
            assert "time zone" in nowhere.json()["error"] or "timezone" in nowhere.json()["error"]
            changed = await client.patch(
                "/v1/customers/ada/preferences",
                headers=mine,
                json={"consent": {"sms": False}, "marketing_opt_in": False, "unsubscribed": []},
            )
            assert changed.status_code == 200, changed.text
            assert changed.json()["consent"]["sms"] is False
        records = await _preferences_after(topics, start, 2)
        assert [r["unsubscribed"] for r in records] == [["EMAIL"], []]
        assert records[1]["consent"] == {**upstream["consent"], "sms": False}
        assert records[1]["quiet_hours"] == upstream["quiet_hours"]
    finally:
        status = api.stop()
    assert status == 0, api.tail()


# -- the whole way -------------------------------------------------------------------------------

FACTOR = 21_600  # a simulated day every four real seconds


def _customer() -> str:
    """A customer in no holdout group of product_education or need_help (the default journeys')."""
    holdouts = load_journeys().holdouts
    for n in range(100):
        customer = f"cust-unsub-{n}"
        if not any(
            holdouts.reason(customer, journey, step, Priority.ENGAGEMENT)
            for journey, step in (("product_education", "tips"), ("need_help", "offer"))
        ):
            return customer
    raise AssertionError("no customer outside the holdout groups")


def _sandbox_env(sandbox: Sandbox) -> dict[str, str]:
    config = sandbox.config
    return {
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
    }


async def test_the_link_in_a_real_email_unsubscribes_from_engagement_but_not_from_receipts(
    topics: Settings, producer: AIOKafkaProducer, sandbox: Sandbox, tmp_path: Path
) -> None:
    customer = _customer()
    epoch = time.time()
    sim_start = datetime(2026, 3, 2, tzinfo=UTC)
    clock = AcceleratedClock(sim_start, FACTOR, epoch)
    shared = {
        "AFTERCARE_CLOCK_FACTOR": str(FACTOR),
        "AFTERCARE_CLOCK_START": sim_start.isoformat(),
        "AFTERCARE_CLOCK_EPOCH": repr(epoch),
        "AFTERCARE_PREFERENCES_KEY": KEY,
    }
    api = _component("preferences-api", topics, tmp_path, "AFTERCARE_PREFERENCES_PORT", **shared)
    shared["AFTERCARE_UNSUBSCRIBE_URL"] = f"http://127.0.0.1:{api.port}"
    senders = _component(
        "senders", topics, tmp_path, "AFTERCARE_SENDERS_PORT", **shared, **_sandbox_env(sandbox)
    )
    (worker_port,) = free_ports(1)
    worker = worker_process(
        topics,
        tmp_path / "state",
        tmp_path / "worker.log",
        worker_port,
        AFTERCARE_CUSTOMER_API_TOKEN="support-token",
        **shared,
    )
    deliveries = await end_offsets(topics, topics.topic(TopicRole.DELIVERIES))
    processes = (api, senders, worker)
    for process in processes:
        process.start()
    try:
        for process in processes:
            await process.wait_ready()
        s = (clock.now() + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
        story = [
            (TopicRole.PREFERENCES, preferences(
                customer_id=customer, event_id=f"{customer}-p", occurred_at=s - timedelta(hours=1),
                consent={"email": True, "sms": False, "whatsapp": False, "push": False,
                         "in_app": False},
                quiet_hours=None, timezone="UTC",
            )),
            (TopicRole.PURCHASES, purchase(customer_id=customer, event_id=f"{customer}-1",
                                           order_id="o1", occurred_at=s)),
            (TopicRole.SHIPMENTS, _parcel(customer, "o1", "SHIPPED", s + timedelta(hours=6))),
            (TopicRole.SHIPMENTS, _parcel(customer, "o1", "DELIVERED", s + timedelta(days=1))),
        ]  # fmt: skip
        for role, record in story:
            await asyncio.sleep(clock.real_seconds_until(record["occurred_at"]))
            await _publish(producer, topics, role, record)

        # Product education, a day after delivery: an engagement email with the one-click link.
        tips = await _outcome(topics, deliveries, customer, "product_education", timeout=60)
        assert tips["status"] == "DELIVERED", tips
        async with httpx.AsyncClient() as client:
            stored = (
                await client.get(
                    f"{sandbox.http_url}/_sandbox/messages",
                    params={"channel": "email", "touchpoint_id": tips["touchpoint_id"]},
                )
            ).json()
            (message,) = stored
            headers = message["headers"]
            assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            link = headers["List-Unsubscribe"].strip("<>")
            assert link.startswith(f"http://127.0.0.1:{api.port}/unsubscribe?token=")
            (token,) = parse_qs(urlsplit(link).query)["token"]
            assert SIGNER.verify(token, clock.now()).customer_id == customer
            assert link in message["body"]  # the footer offers the same link
            click = await client.post(link, data={"List-Unsubscribe": "One-Click"})
            assert click.status_code == 200, click.text

        # Need help, two days later, by email only (no app, no push): not any more.
        help_offer = await _outcome(topics, deliveries, customer, "need_help", timeout=60)
        assert (help_offer["status"], help_offer["reason"]) == ("SUPPRESSED", "no_consent")
        # A new order's confirmation still goes by email.
        second = purchase(customer_id=customer, event_id=f"{customer}-2", order_id="o2",
                          occurred_at=clock.now())  # fmt: skip
        await _publish(producer, topics, TopicRole.PURCHASES, second)
        receipt = await _outcome(
            topics, deliveries, customer, "order_confirmation", order="o2", timeout=60
        )
        assert (receipt["status"], receipt["channel"]) == ("DELIVERED", "EMAIL")

        # Support asks why: `aftercare customer` answers from the table's changelog and the
        # customer's partition of deliveries and dispatch.
        view = await look_up(topics, customer)
        assert view.state is not None
        assert [c.value for c in view.state.preferences.unsubscribed] == ["EMAIL"]
        text = "\n".join(as_text(view))
        assert "unsubscribed from engagement: EMAIL" in text
        assert "SUPPRESSED  need_help.offer  -  no_consent" in text
        assert "DELIVERED  product_education.tips  email" in text
        assert "ada@example.org" not in text  # addresses masked
        assert "a***@example.org" in text
        document = as_json(view)
        assert document["state"]["contact"]["email"] == "a***@example.org"
        assert {h["journey"] for h in document["history"]} >= {"need_help", "product_education"}
        # The same from the worker's page, for support tools: with the bearer token only.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker_port}") as client:
            assert (await client.get(f"/customers/{customer}")).status_code == 401
            support = {"Authorization": "Bearer support-token"}
            page = await client.get(f"/customers/{customer}", headers=support)
            assert page.status_code == 200, page.text
            assert page.json()["state"]["preferences"]["unsubscribed"] == ["EMAIL"]
            unknown = await client.get("/customers/nobody-at-all", headers=support)
            assert unknown.status_code == 404
    finally:
        statuses = [await process.stopped() for process in processes]
    assert statuses == [0, 0, 0], "\n".join(p.tail() for p in processes)


def _parcel(customer: str, order: str, kind: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": f"{customer}-{order}-{kind}",
        "customer_id": customer,
        "occurred_at": at,
        "type": kind,
        "order_id": order,
        "shipment_id": f"{order}-parcel",
        "carrier": "DHL",
        "tracking_url": None,
        "eta": None,
        "reason": None,
    }


async def _outcome(
    topics: Settings,
    start: dict[Any, int],
    customer: str,
    journey: str,
    *,
    order: str | None = None,
    timeout: float,
) -> dict[str, Any]:
    """The first outcome on deliveries of ``journey`` for ``customer`` (and ``order``)."""
    schemas = SchemaSet.load()
    topic = topics.topic(TopicRole.DELIVERIES)
    async with asyncio.timeout(timeout):
        while True:
            end = await end_offsets(topics, topic)
            for message in await read_range(topics, topic, start, end):
                outcome = schemas.decode(message.value, DELIVERY).record
                if (outcome["customer_id"], outcome["journey"]) == (customer, journey) and (
                    order is None or outcome["order_id"] == order
                ):
                    return outcome
            await asyncio.sleep(0.2)
