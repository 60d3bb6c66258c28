"""The provider sandbox over real sockets: each stand-in's shapes, its outbox, and its faults.

Every test starts its own sandbox on free ports with an outbox in ``tmp_path`` and talks to it
the way a sender would: httpx for the HTTP APIs, aiosmtplib for SMTP. Fault rates are 0 or 1 (and
the seed is fixed), so every outcome is determined; the one timing assertion is a lower bound on
injected latency.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import pytest

from pipeline.config import Settings
from pipeline.sandbox.cli import SandboxCommandError, add_commands, config_from_env
from pipeline.sandbox.faults import FaultInjector, Outcome
from pipeline.sandbox.server import Sandbox

ROOT = Path(__file__).resolve().parents[2]
PHONE = "+4915112345678"
TWILIO_PATH = "/twilio/2010-04-01/Accounts/ACsandbox/Messages.json"
WHATSAPP_PATH = "/whatsapp/v21.0/1000000001/messages"
FCM_PATH = "/fcm/v1/projects/aftercare-sandbox/messages:send"
WEBHOOK_PATH = "/webhook/support"


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.http_url, timeout=10.0) as http:
        yield http


# -- requests as the senders make them --------------------------------------------------------


def twilio(touchpoint: str = "tp-sms-1", **form: str) -> dict[str, Any]:
    return {
        "url": TWILIO_PATH,
        "data": {"To": PHONE, "From": "+15005550006", "Body": "Your parcel is on its way"} | form,
        "auth": ("ACsandbox", "sandbox-token"),
        "headers": {"I-Twilio-Idempotency-Token": touchpoint},
    }


def whatsapp_payload(touchpoint: str = "tp-wa-1") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": PHONE.lstrip("+"),
        "type": "text",
        "text": {"preview_url": False, "body": "Your parcel arrives today"},
        "biz_opaque_callback_data": touchpoint,
    }


def whatsapp(touchpoint: str = "tp-wa-1") -> dict[str, Any]:
    return {
        "url": WHATSAPP_PATH,
        "json": whatsapp_payload(touchpoint),
        "headers": {"Authorization": "Bearer sandbox-whatsapp-token"},
    }


def fcm_payload(touchpoint: str = "tp-push-1", token: str = "device-token-1") -> dict[str, Any]:
    return {
        "message": {
            "token": token,
            "notification": {"title": "Delivered", "body": "Your Barista 900 is here"},
            "data": {"touchpoint_id": touchpoint, "journey": "delivered"},
        }
    }


def fcm(touchpoint: str = "tp-push-1", token: str = "device-token-1") -> dict[str, Any]:
    return {
        "url": FCM_PATH,
        "json": fcm_payload(touchpoint, token),
        "headers": {"Authorization": "Bearer sandbox-push-token"},
    }


def signed(body: bytes, secret: str = "sandbox-webhook-secret", at: float | None = None) -> str:
    timestamp = int(time.time() if at is None else at)
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def webhook(touchpoint: str = "tp-wh-1") -> dict[str, Any]:
    body = json.dumps({"type": "support_handoff.task", "touchpoint_id": touchpoint}).encode()
    return {
        "url": WEBHOOK_PATH,
        "content": body,
        "headers": {
            "Content-Type": "application/json",
            "Aftercare-Signature": signed(body),
            "Idempotency-Key": touchpoint,
        },
    }


REQUESTS: dict[str, Callable[[str], dict[str, Any]]] = {
    "sms": twilio,
    "whatsapp": whatsapp,
    "push": fcm,
    "webhook": webhook,
}


async def post(client: httpx.AsyncClient, request: dict[str, Any]) -> httpx.Response:
    return await client.post(**request)


async def stored(client: httpx.AsyncClient, **params: str | int) -> list[dict[str, Any]]:
    answer = await client.get("/_sandbox/messages", params=params)
    assert answer.status_code == 200, answer.text
    messages: list[dict[str, Any]] = answer.json()
    return messages


async def counts(client: httpx.AsyncClient) -> dict[str, dict[str, int]]:
    answer = await client.get("/_sandbox/counts")
    assert answer.status_code == 200, answer.text
    table: dict[str, dict[str, int]] = answer.json()
    return table


async def set_faults(client: httpx.AsyncClient, channel: str, **fields: Any) -> dict[str, Any]:
    answer = await client.put(f"/_sandbox/faults/{channel}", json=fields)
    assert answer.status_code == 200, answer.text
    faults: dict[str, Any] = answer.json()
    return faults


def email(touchpoint: str = "tp-mail-1") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Shop care <care@shop.example>"
    message["To"] = "ada@example.org"
    message["Subject"] = "Ihre Bestellung für Barista 900 ist unterwegs"
    message["Message-ID"] = f"<{touchpoint}@shop.example>"
    message["List-Unsubscribe"] = "<https://shop.example/unsubscribe?t=1>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["X-Aftercare-Touchpoint"] = touchpoint
    message.set_content("Track it here: https://shop.example/t/1\n")
    message.add_alternative(
        "<p>Track it <a href='https://shop.example/t/1'>here</a></p>\n", subtype="html"
    )
    return message


async def send_email(sandbox: Sandbox, message: EmailMessage, **options: Any) -> str:
    options.setdefault("username", "aftercare")
    options.setdefault("password", "sandbox-smtp-password")
    _, reply = await aiosmtplib.send(
        message, hostname="127.0.0.1", port=sandbox.smtp_port, timeout=10, **options
    )
    return reply


# -- SMS (Twilio) -------------------------------------------------------------------------------


async def test_twilio_accepts_a_message_and_stores_it_with_its_touchpoint(
    client: httpx.AsyncClient,
) -> None:
    answer = await post(client, twilio("tp-sms-1"))

    assert answer.status_code == 201, answer.text
    resource = answer.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", resource["sid"])
    assert resource["status"] == "queued"
    assert (resource["to"], resource["from"], resource["body"]) == (
        PHONE,
        "+15005550006",
        "Your parcel is on its way",
    )
    assert parsedate_to_datetime(resource["date_created"]).utcoffset() is not None
    (message,) = await stored(client, channel="sms")
    assert message["touchpoint_id"] == "tp-sms-1"
    assert message["provider_id"] == resource["sid"]
    assert (message["recipient"], message["body"]) == (PHONE, "Your parcel is on its way")
    assert "Authorization" not in message["headers"]


async def test_twilio_repeats_the_original_answer_for_a_known_idempotency_token(
    client: httpx.AsyncClient,
) -> None:
    first = await post(client, twilio("tp-sms-2"))
    again = await post(client, twilio("tp-sms-2"))

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert len(await stored(client, touchpoint_id="tp-sms-2")) == 1
    sms = (await counts(client))["sms"]
    assert (sms["accepted"], sms["duplicate"]) == (1, 1)


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        pytest.param(TWILIO_PATH, ("ACsandbox", "wrong-token"), id="wrong-token"),
        pytest.param(TWILIO_PATH, None, id="no-credentials"),
        pytest.param(
            TWILIO_PATH.replace("ACsandbox", "ACother"),
            ("ACother", "sandbox-token"),
            id="other-sid",
        ),
        pytest.param(
            TWILIO_PATH.replace("ACsandbox", "ACother"),
            ("ACsandbox", "sandbox-token"),
            id="sid-mismatch",
        ),
    ],
)
async def test_twilio_refuses_bad_credentials(
    client: httpx.AsyncClient, path: str, auth: tuple[str, str] | None
) -> None:
    request = twilio() | {"url": path, "auth": auth}
    answer = await post(client, request)

    assert answer.status_code == 401
    assert answer.json() == {"code": 20003, "message": "Authenticate", "status": 401}
    assert await stored(client) == []
    assert (await counts(client))["sms"]["rejected"] == 1


async def test_twilio_refuses_a_number_not_in_e164(client: httpx.AsyncClient) -> None:
    answer = await post(client, twilio(To="015112345678"))

    assert answer.status_code == 400
    assert answer.json()["code"] == 21211
    assert answer.json()["message"] == "Invalid 'To' Phone Number"
    assert await stored(client) == []


# -- WhatsApp Cloud API -------------------------------------------------------------------------


async def test_whatsapp_accepts_a_text_and_keeps_the_callback_data_as_touchpoint(
    client: httpx.AsyncClient,
) -> None:
    answer = await post(client, whatsapp("tp-wa-1"))

    assert answer.status_code == 200, answer.text
    body = answer.json()
    to = PHONE.lstrip("+")
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": to, "wa_id": to}]
    (sent,) = body["messages"]
    assert sent["id"].startswith("wamid.")
    (message,) = await stored(client, channel="whatsapp")
    assert (message["touchpoint_id"], message["provider_id"]) == ("tp-wa-1", sent["id"])
    assert (message["recipient"], message["body"]) == (to, "Your parcel arrives today")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p: p | {"messaging_product": "sms"}, id="messaging-product"),
        pytest.param(lambda p: p | {"type": "image"}, id="type"),
        pytest.param(lambda p: {k: v for k, v in p.items() if k != "text"}, id="no-text"),
        pytest.param(lambda p: p | {"text": {"body": ""}}, id="empty-body"),
        pytest.param(lambda p: p | {"to": "ada"}, id="to-not-digits"),
        pytest.param(lambda p: [p], id="not-an-object"),
    ],
)
async def test_whatsapp_refuses_a_bad_payload_with_code_100(
    client: httpx.AsyncClient, change: Callable[[dict[str, Any]], object]
) -> None:
    request = whatsapp() | {"json": change(whatsapp_payload())}
    answer = await post(client, request)

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("OAuthException", 100)
    assert error["message"]
    assert await stored(client) == []


async def test_whatsapp_refuses_a_wrong_token(client: httpx.AsyncClient) -> None:
    request = whatsapp() | {"headers": {"Authorization": "Bearer not-the-token"}}
    answer = await post(client, request)

    assert answer.status_code == 401
    assert answer.json() == {
        "error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}
    }


# -- push (FCM HTTP v1) -------------------------------------------------------------------------


async def test_fcm_accepts_a_notification_and_keeps_the_touchpoint_from_data(
    client: httpx.AsyncClient,
) -> None:
    answer = await post(client, fcm("tp-push-1"))

    assert answer.status_code == 200, answer.text
    name = answer.json()["name"]
    assert re.fullmatch(r"projects/aftercare-sandbox/messages/[0-9]+", name)
    (message,) = await stored(client, channel="push")
    assert (message["touchpoint_id"], message["provider_id"]) == ("tp-push-1", name)
    assert (message["recipient"], message["subject"]) == ("device-token-1", "Delivered")
    assert json.loads(message["body"]) == fcm_payload("tp-push-1")


async def test_fcm_answers_404_unregistered_for_a_stale_token(client: httpx.AsyncClient) -> None:
    answer = await post(client, fcm(token="unregistered-device-7"))

    assert answer.status_code == 404
    assert answer.json() == {
        "error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "status": "NOT_FOUND",
            "details": [
                {
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": "UNREGISTERED",
                }
            ],
        }
    }
    assert await stored(client) == []


@pytest.mark.parametrize("token", ["", None])
async def test_fcm_refuses_a_missing_token(client: httpx.AsyncClient, token: str | None) -> None:
    payload = fcm_payload()
    payload["message"]["token"] = token
    answer = await post(client, fcm() | {"json": payload})

    assert answer.status_code == 400
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"


async def test_fcm_refuses_a_wrong_bearer_token(client: httpx.AsyncClient) -> None:
    answer = await post(client, fcm() | {"headers": {"Authorization": "Bearer expired"}})

    assert answer.status_code == 401
    error = answer.json()["error"]
    assert (error["code"], error["status"]) == (401, "UNAUTHENTICATED")


# -- signed webhooks ----------------------------------------------------------------------------


async def test_webhook_accepts_a_signed_post_once_per_idempotency_key(
    client: httpx.AsyncClient,
) -> None:
    request = webhook("tp-wh-1")
    first = await post(client, request)
    again = await post(client, request)

    assert first.status_code == again.status_code == 200
    assert re.fullmatch(r"wh_[0-9]+", first.json()["id"])
    assert first.json() == again.json() == {"id": first.json()["id"], "received": True}
    (message,) = await stored(client, channel="webhook")
    assert (message["touchpoint_id"], message["recipient"]) == ("tp-wh-1", "support")
    assert message["body"] == request["content"].decode()
    webhook_counts = (await counts(client))["webhook"]
    assert (webhook_counts["accepted"], webhook_counts["duplicate"]) == (1, 1)


def _wrong_secret(request: dict[str, Any]) -> None:
    request["headers"]["Aftercare-Signature"] = signed(request["content"], secret="guess")


def _no_signature(request: dict[str, Any]) -> None:
    del request["headers"]["Aftercare-Signature"]


def _stale(request: dict[str, Any]) -> None:
    request["headers"]["Aftercare-Signature"] = signed(request["content"], at=time.time() - 301)


def _tampered(request: dict[str, Any]) -> None:
    request["content"] = request["content"].replace(b"support", b"refund!")


@pytest.mark.parametrize("spoil", [_wrong_secret, _no_signature, _stale, _tampered])
async def test_webhook_refuses_a_bad_signature(
    client: httpx.AsyncClient, spoil: Callable[[dict[str, Any]], None]
) -> None:
    request = webhook()
    spoil(request)
    answer = await post(client, request)

    assert answer.status_code == 401
    assert answer.json()["error"] == "bad signature"
    assert await stored(client) == []


# -- HTTP faults --------------------------------------------------------------------------------


def _provider_code(channel: str, body: dict[str, Any]) -> object:
    """The field a sender would branch on, in each provider's error shape."""
    if channel == "sms":
        return body["code"]
    if channel == "whatsapp":
        return body["error"]["code"]
    if channel == "push":
        return body["error"]["status"]
    return "message" if isinstance(body["error"], str) and body["error"] else body


FAULTS: dict[str, dict[str, Any]] = {
    "throttled": {"throttle_rate": 1, "retry_after_s": 7},
    "failed": {"error_rate": 1},
    "outage": {"outage_until": time.time() + 3600},
    "rejected": {"reject_rate": 1},
}

# (channel, result) -> (HTTP status, provider code)
EXPECTED: dict[tuple[str, str], tuple[int, object]] = {
    ("sms", "throttled"): (429, 20429),
    ("sms", "failed"): (500, 20500),
    ("sms", "outage"): (503, 20503),
    ("sms", "rejected"): (400, 21610),
    ("whatsapp", "throttled"): (429, 130429),
    ("whatsapp", "failed"): (503, 2),
    ("whatsapp", "outage"): (503, 2),
    ("whatsapp", "rejected"): (400, 131026),
    ("push", "throttled"): (429, "RESOURCE_EXHAUSTED"),
    ("push", "failed"): (503, "UNAVAILABLE"),
    ("push", "outage"): (503, "UNAVAILABLE"),
    ("push", "rejected"): (400, "INVALID_ARGUMENT"),
    ("webhook", "throttled"): (429, "message"),
    ("webhook", "failed"): (503, "message"),
    ("webhook", "outage"): (503, "message"),
    ("webhook", "rejected"): (400, "message"),
}


@pytest.mark.parametrize(("channel", "result"), list(EXPECTED))
async def test_each_http_fault_answers_in_the_providers_shape(
    client: httpx.AsyncClient, channel: str, result: str
) -> None:
    await set_faults(client, channel, **FAULTS[result])
    answer = await post(client, REQUESTS[channel](f"tp-{channel}-{result}"))

    status, code = EXPECTED[(channel, result)]
    assert answer.status_code == status, answer.text
    assert _provider_code(channel, answer.json()) == code
    assert answer.headers["X-Sandbox-Fault"] == result
    if result == "throttled":
        assert answer.headers["Retry-After"] == "7"
    assert await stored(client) == []
    assert (await counts(client))[channel][result] == 1


async def test_an_outage_answers_503_before_checking_credentials(client: httpx.AsyncClient) -> None:
    await set_faults(client, "sms", outage_until=time.time() + 3600)
    answer = await post(client, twilio() | {"auth": ("ACsandbox", "wrong")})

    assert answer.status_code == 503


async def test_an_outage_in_the_past_is_over(client: httpx.AsyncClient) -> None:
    await set_faults(client, "whatsapp", outage_until=time.time() - 1)

    assert (await post(client, whatsapp())).status_code == 200


async def test_injected_latency_delays_the_answer_by_at_least_that_much(
    client: httpx.AsyncClient,
) -> None:
    await set_faults(client, "push", latency_ms=300)
    started = time.monotonic()
    answer = await post(client, fcm())

    assert answer.status_code == 200
    assert time.monotonic() - started >= 0.3


async def test_faults_change_and_clear_at_run_time(client: httpx.AsyncClient) -> None:
    assert (await post(client, twilio("tp-1"))).status_code == 201
    faults = await set_faults(client, "sms", throttle_rate=1, retry_after_s=2)
    assert faults["throttle_rate"] == 1
    assert (await post(client, twilio("tp-2"))).status_code == 429
    assert (await client.get("/_sandbox/faults")).json()["sms"]["retry_after_s"] == 2

    await set_faults(client, "sms", throttle_rate=0)
    assert (await post(client, twilio("tp-2"))).status_code == 201

    await set_faults(client, "webhook", error_rate=1)
    reset = await client.delete("/_sandbox/faults")
    assert reset.status_code == 200
    assert reset.json()["webhook"]["error_rate"] == 0
    assert (await post(client, webhook("tp-3"))).status_code == 200


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        pytest.param({"latency": 5}, "'latency'", id="unknown-field"),
        pytest.param({"error_rate": 1.5}, "error_rate", id="rate-above-one"),
        pytest.param({"throttle_rate": True}, "throttle_rate", id="bool"),
        pytest.param({"retry_after_s": 1.5}, "whole seconds", id="fractional-retry-after"),
        pytest.param({"latency_ms": -1}, "negative", id="negative-latency"),
        pytest.param({"outage_until": "soon"}, "outage_until", id="outage-not-a-number"),
        pytest.param([1], "JSON object", id="not-an-object"),
        pytest.param({"error_rate": 1, "bogus": 2}, "'bogus'", id="all-or-nothing"),
    ],
)
async def test_bad_fault_settings_are_refused_with_the_reason_and_change_nothing(
    client: httpx.AsyncClient, body: object, mentions: str
) -> None:
    answer = await client.put("/_sandbox/faults/sms", json=body)

    assert answer.status_code == 400
    assert mentions in answer.json()["error"]
    assert (await client.get("/_sandbox/faults")).json()["sms"]["error_rate"] == 0


async def test_faults_of_an_unknown_channel_are_refused(client: httpx.AsyncClient) -> None:
    answer = await client.put("/_sandbox/faults/fax", json={"error_rate": 1})

    assert answer.status_code == 404
    assert "fax" in answer.json()["error"]


def test_fractional_rates_draw_the_same_sequence_from_the_same_seed() -> None:
    def draws(seed: int) -> list[Outcome]:
        injector = FaultInjector(random.Random(seed))
        injector.update("sms", {"error_rate": 0.5})
        return [injector.decide("sms").outcome for _ in range(64)]

    first = draws(42)
    assert first == draws(42)
    assert {Outcome.PASS, Outcome.FAILED} <= set(first)


# -- SMTP ---------------------------------------------------------------------------------------


async def test_smtp_stores_a_message_with_its_parts_headers_and_touchpoint(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    reply = await send_email(
        sandbox, email("tp-mail-1"), recipients=["ada@example.org", "bob@example.org"]
    )

    (message,) = await stored(client, channel="email")
    assert reply == f"OK queued as {message['provider_id']}"
    assert re.fullmatch(r"sandbox-email-[0-9]+", message["provider_id"])
    assert message["touchpoint_id"] == "tp-mail-1"
    assert message["recipient"] == "ada@example.org, bob@example.org"
    assert message["subject"] == "Ihre Bestellung für Barista 900 ist unterwegs"
    assert message["body"] == "Track it here: https://shop.example/t/1\n"
    assert message["html"] == "<p>Track it <a href='https://shop.example/t/1'>here</a></p>\n"
    headers = message["headers"]
    assert headers["Message-ID"] == "<tp-mail-1@shop.example>"
    assert headers["List-Unsubscribe"] == "<https://shop.example/unsubscribe?t=1>"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["X-Aftercare-Touchpoint"] == "tp-mail-1"


async def test_smtp_serves_a_client_that_does_not_authenticate(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    await send_email(sandbox, email("tp-mail-2"), username=None, password=None)

    assert len(await stored(client, touchpoint_id="tp-mail-2")) == 1


async def test_smtp_refuses_a_wrong_password_with_535(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as refused:
        await send_email(sandbox, email(), password="guess")

    assert refused.value.code == 535
    assert await stored(client) == []


@pytest.mark.parametrize(
    ("result", "code", "error"),
    [
        ("failed", 451, aiosmtplib.SMTPDataError),
        ("throttled", 421, aiosmtplib.SMTPDataError),
        ("rejected", 550, aiosmtplib.SMTPDataError),
        ("outage", 421, aiosmtplib.SMTPSenderRefused),  # refused already at MAIL FROM
    ],
)
async def test_each_smtp_fault_is_the_reply_code_a_mail_server_gives(
    sandbox: Sandbox,
    client: httpx.AsyncClient,
    result: str,
    code: int,
    error: type[aiosmtplib.SMTPResponseException],
) -> None:
    await set_faults(client, "email", **FAULTS[result])

    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await send_email(sandbox, email())

    assert isinstance(refused.value, error)
    assert refused.value.code == code
    assert await stored(client) == []
    assert (await counts(client))["email"][result] == 1


async def test_smtp_latency_delays_the_reply_by_at_least_that_much(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    await set_faults(client, "email", latency_ms=200)
    started = time.monotonic()
    await send_email(sandbox, email())

    assert time.monotonic() - started >= 0.2


# -- inspection -------------------------------------------------------------------------------


async def test_messages_filter_by_channel_touchpoint_and_since_id_and_clear(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    for request in (twilio("tp-a"), whatsapp("tp-b"), twilio("tp-c")):
        assert (await post(client, request)).is_success
    await send_email(sandbox, email("tp-d"))

    everything = await stored(client)
    assert [m["touchpoint_id"] for m in everything] == ["tp-a", "tp-b", "tp-c", "tp-d"]
    assert [m["touchpoint_id"] for m in await stored(client, channel="sms")] == ["tp-a", "tp-c"]
    assert [m["channel"] for m in await stored(client, touchpoint_id="tp-b")] == ["whatsapp"]
    after_first = await stored(client, since_id=everything[0]["id"])
    assert [m["touchpoint_id"] for m in after_first] == ["tp-b", "tp-c", "tp-d"]
    assert (await client.get("/_sandbox/messages", params={"channel": "fax"})).status_code == 400
    assert (await client.get("/_sandbox/messages", params={"since_id": "x"})).status_code == 400

    cleared = await client.delete("/_sandbox/messages")
    assert cleared.json() == {"deleted": 4}
    assert await stored(client) == []
    assert (await counts(client))["sms"]["accepted"] == 0
    assert (await post(client, twilio("tp-e"))).status_code == 201
    assert (await stored(client))[0]["id"] > everything[-1]["id"]  # ids are never reused


async def test_health(client: httpx.AsyncClient) -> None:
    answer = await client.get("/_sandbox/health")

    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


async def test_a_restarted_sandbox_comes_back_at_the_same_address_with_its_outbox(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    assert (await post(client, twilio("tp-before"))).status_code == 201
    url, smtp_port = sandbox.http_url, sandbox.smtp_port

    await sandbox.stop()
    with pytest.raises(httpx.TransportError):
        await client.get("/_sandbox/health")
    await sandbox.start()

    assert (sandbox.http_url, sandbox.smtp_port) == (url, smtp_port)
    assert [m["touchpoint_id"] for m in await stored(client)] == ["tp-before"]


# -- the command line -------------------------------------------------------------------------


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aftercare")
    add_commands(parser.add_subparsers(required=True))
    return parser.parse_args(["sandbox", *argv])


async def _run(args: argparse.Namespace, environ: dict[str, str] | None = None) -> int:
    # The handlers call asyncio.run, as the aftercare command does; give them a thread.
    result: int = await asyncio.to_thread(args.handler, Settings.from_env(environ or {}), args)
    return result


async def test_cli_sets_and_clears_faults_and_lists_messages(
    sandbox: Sandbox, client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sandbox.http_url
    assert (
        await _run(
            _parse("fault", "sms", "--throttle-rate", "1", "--retry-after", "4", "--url", url)
        )
        == 0
    )
    faults = (await client.get("/_sandbox/faults")).json()["sms"]
    assert (faults["throttle_rate"], faults["retry_after_s"]) == (1, 4)
    assert (await post(client, twilio("tp-cli"))).status_code == 429

    assert await _run(_parse("fault", "sms", "--clear", "--url", url)) == 0
    assert (await post(client, twilio("tp-cli"))).status_code == 201
    capsys.readouterr()

    assert await _run(_parse("messages", "--channel", "sms", "--json", "--url", url)) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["touchpoint_id"] == "tp-cli"

    assert await _run(_parse("messages", "--url", url)) == 0
    table = capsys.readouterr().out
    assert "tp-cli" in table
    assert "Your parcel is on its way" in table


async def test_cli_outage_seconds_starts_and_ends_an_outage(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    url = sandbox.http_url
    assert await _run(_parse("fault", "push", "--outage-seconds", "3600", "--url", url)) == 0
    assert (await post(client, fcm())).status_code == 503
    assert await _run(_parse("fault", "push", "--outage-seconds", "0", "--url", url)) == 0
    assert (await post(client, fcm())).status_code == 200


async def test_cli_says_what_to_do_when_no_sandbox_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "http://127.0.0.1:9"  # the discard port; nothing listens on it here
    assert await _run(_parse("messages", "--url", url)) == 1
    error = capsys.readouterr().err
    assert url in error
    assert "aftercare sandbox" in error


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        (
            {"AFTERCARE_SANDBOX_HTTP_PORT": "http"},
            "AFTERCARE_SANDBOX_HTTP_PORT must be a TCP port (0-65535; 0: any free one), got 'http'",
        ),
        (
            {"AFTERCARE_SANDBOX_SMTP_PORT": "70000"},
            "AFTERCARE_SANDBOX_SMTP_PORT must be a TCP port (0-65535; 0: any free one), "
            "got '70000'",
        ),
    ],
)
def test_cli_names_a_bad_environment_variable(environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(SandboxCommandError, match=re.escape(fragment)):
        config_from_env(environ)


def test_cli_reads_ports_and_outbox_from_the_environment(tmp_path: Path) -> None:
    config = config_from_env(
        {
            "AFTERCARE_SANDBOX_HTTP_PORT": "18025",
            "AFTERCARE_SANDBOX_SMTP_PORT": "12525",
            "AFTERCARE_SANDBOX_DB": str(tmp_path / "box.sqlite"),
        }
    )
    assert (config.http_port, config.smtp_port, config.db_path) == (
        18025,
        12525,
        tmp_path / "box.sqlite",
    )
    default = config_from_env({"AFTERCARE_HOME": str(tmp_path)})
    assert (default.http_port, default.bind_address) == (8025, "127.0.0.1")
    assert default.db_path == tmp_path / "sandbox" / "outbox.sqlite"  # the outbox follows the home
    assert config_from_env({"AFTERCARE_BIND_ADDRESS": "0.0.0.0"}).bind_address == "0.0.0.0"


async def test_cli_reaches_the_sandbox_on_its_configured_port(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {"AFTERCARE_SANDBOX_HTTP_PORT": str(sandbox.http_port)}
    assert await _run(_parse("fault", "webhook", "--latency-ms", "5"), environ) == 0
    assert json.loads(capsys.readouterr().out)["webhook"]["latency_ms"] == 5
    assert await _run(_parse("messages"), environ) == 0
    assert capsys.readouterr().out.strip() == "no messages"


async def test_serve_forever_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import asyncio\n"
        "from pipeline.sandbox.cli import config_from_env\n"
        "from pipeline.sandbox.server import serve_forever\n"
        "asyncio.run(serve_forever(config_from_env()))\n",
        cwd=ROOT,
        env=os.environ
        | {
            "PYTHONPATH": str(ROOT),
            "AFTERCARE_SANDBOX_HTTP_PORT": "0",
            "AFTERCARE_SANDBOX_SMTP_PORT": "0",
            "AFTERCARE_SANDBOX_DB": str(tmp_path / "outbox.sqlite"),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            banner = (await process.stdout.readline()).decode()
        found = re.search(r"HTTP (http://127\.0\.0\.1:[0-9]+) .*SMTP 127\.0\.0\.1:([0-9]+)", banner)
        assert found, banner
        async with httpx.AsyncClient(base_url=found[1]) as http:
            assert (await http.get("/_sandbox/health")).status_code == 200

        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            status = await process.wait()
        assert status == 0, (await process.stderr.read()).decode() if process.stderr else ""
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_an_email_sent_again_with_the_same_message_id_is_counted_not_stored_twice(
    sandbox: Sandbox,
) -> None:
    message = EmailMessage()
    message["From"] = "care@shop.example"
    message["To"] = "ada@example.org"
    message["Subject"] = "Hello"
    message["Message-ID"] = "<tp_again@shop.example>"
    message["X-Aftercare-Touchpoint"] = "tp_again"
    message.set_content("Hello")
    for _ in range(2):
        await aiosmtplib.send(message, hostname="127.0.0.1", port=sandbox.smtp_port)
    assert len(sandbox.store.messages(channel="email", touchpoint_id="tp_again")) == 1
    assert sandbox.store.counts()["email"]["duplicate"] == 1


@pytest.mark.parametrize("channel", ["sms", "whatsapp", "push", "webhook"])
async def test_kill_after_accept_kills_the_named_process_once_after_storing_the_message(
    client: httpx.AsyncClient, channel: str
) -> None:
    victim = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(120)"
    )
    try:
        faults = await set_faults(client, channel, kill_after_accept=[victim.pid])
        assert faults["kill_after_accept"] == [victim.pid]

        answer = await post(client, REQUESTS[channel](f"tp-{channel}-killed"))

        assert answer.status_code in (200, 201), answer.text
        assert await asyncio.wait_for(victim.wait(), timeout=10) == -signal.SIGKILL
        assert len(await stored(client)) == 1  # accepted: the provider has it
        assert (await client.get("/_sandbox/faults")).json()[channel]["kill_after_accept"] == []
    finally:
        if victim.returncode is None:
            victim.kill()
            await victim.wait()


@pytest.mark.parametrize("value", [5, ["12"], [True], [0]])
async def test_kill_after_accept_takes_a_list_of_pids(
    client: httpx.AsyncClient, value: object
) -> None:
    answer = await client.put("/_sandbox/faults/sms", json={"kill_after_accept": value})
    assert answer.status_code == 400
    assert "kill_after_accept is a list of process ids" in answer.text
