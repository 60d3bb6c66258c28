"""The HTTP stand-ins: Twilio-, WhatsApp Cloud-, FCM- and webhook-shaped APIs on one aiohttp app.

The senders are configured with a base URL and credentials and nothing else, so the sandbox has to
be indistinguishable at that level: the same paths, the same authentication, the same request
encoding, and answers in each provider's own shapes, for success and for every kind of failure.
A sender that handles the sandbox's 429 with ``Retry-After``, its 503, its 400 and its 404 for an
unregistered device handles the real provider's, and the tests prove it without a network.

One app serves them all under a prefix per provider (the senders' base URLs are e.g.
``http://127.0.0.1:8025/twilio``)::

    POST /twilio/2010-04-01/Accounts/{account_sid}/Messages.json     SMS (form, Basic auth)
    POST /whatsapp/{version}/{phone_number_id}/messages              WhatsApp (JSON, Bearer)
    POST /fcm/v1/projects/{project_id}/messages:send                 push (JSON, Bearer)
    POST /webhook/{name}                                             webhook (JSON, HMAC signature)

and, not provider-shaped, the controls tests and developers use::

    GET    /_sandbox/messages?channel=&touchpoint_id=&since_id=     stored messages, oldest first
    DELETE /_sandbox/messages                                        forget messages and counts
    GET    /_sandbox/counts                                          {channel: {result: n}}
    GET    /_sandbox/faults                                          {channel: faults}
    PUT    /_sandbox/faults/{channel}                                change some fields -> faults
    DELETE /_sandbox/faults                                          no faults anywhere
    GET    /_sandbox/health                                          200 while serving

Every request goes the same way, in the order a real provider's edge would apply it: injected
latency; an outage (503, before authentication: the service is not there); authentication (401);
throttling (429) and transient errors (5xx); validation (400, 404); an idempotent repeat (the
original answer, nothing stored); an injected rejection (400); then the message is stored.
A response caused by an injected fault carries ``X-Sandbox-Fault: <outcome>`` so that a person
reading logs can tell it from a real mistake.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import BasicAuth, web

from pipeline.sandbox.faults import FaultError, FaultInjector, Outcome, Verdict
from pipeline.sandbox.store import CHANNELS, Channel, Result, SandboxStore

SIGNATURE_TOLERANCE_S = 300  # a webhook signature older (or newer) than this is refused
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_WHATSAPP_TO = re.compile(r"\+?[0-9]{5,15}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ProviderCredentials:
    """What the stand-ins accept; the senders are configured with the same values."""

    sms_account_sid: str
    sms_auth_token: str
    whatsapp_token: str
    push_token: str
    webhook_secret: str


def _twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _meta_error(message: str, code: int, **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": "OAuthException", "code": code, **extra}}


def _google_error(status: int, state: str, message: str, fcm_code: str | None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message, "status": state}
    if fcm_code is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}
        ]
    return {"error": error}


# The answer to each injected fault, per channel: (HTTP status, provider-shaped body).
FAULT_ANSWERS: dict[Channel, dict[Outcome, tuple[int, dict[str, Any]]]] = {
    "sms": {
        Outcome.OUTAGE: (503, _twilio_error(503, 20503, "Service Unavailable")),
        Outcome.FAILED: (500, {"code": 20500, "message": "Internal Server Error", "status": 500}),
        Outcome.THROTTLED: (429, _twilio_error(429, 20429, "Too Many Requests")),
        Outcome.REJECTED: (
            400,
            _twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"),
        ),
    },
    "whatsapp": {
        Outcome.OUTAGE: (
            503,
            _meta_error("Service temporarily unavailable", 2, is_transient=True),
        ),
        Outcome.FAILED: (
            503,
            _meta_error(
                "An unexpected error has occurred. Please retry your request later.",
                2,
                is_transient=True,
            ),
        ),
        Outcome.THROTTLED: (429, {"error": {"message": "Rate limit hit", "code": 130429}}),
        Outcome.REJECTED: (400, _meta_error("(#131026) Message undeliverable", 131026)),
    },
    "push": {
        Outcome.OUTAGE: (
            503,
            _google_error(
                503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE"
            ),
        ),
        Outcome.FAILED: (
            503,
            _google_error(503, "UNAVAILABLE", "The server is overloaded.", "UNAVAILABLE"),
        ),
        Outcome.THROTTLED: (
            429,
            _google_error(
                429, "RESOURCE_EXHAUSTED", "Quota exceeded for sending messages.", "QUOTA_EXCEEDED"
            ),
        ),
        Outcome.REJECTED: (
            400,
            _google_error(
                400, "INVALID_ARGUMENT", "Request contains an invalid argument.", "INVALID_ARGUMENT"
            ),
        ),
    },
    "webhook": {
        Outcome.OUTAGE: (503, {"error": "service unavailable"}),
        Outcome.FAILED: (503, {"error": "temporarily unavailable, retry later"}),
        Outcome.THROTTLED: (429, {"error": "too many requests"}),
        Outcome.REJECTED: (400, {"error": "rejected"}),
    },
}

_RESULT_OF: dict[Outcome, Result] = {
    Outcome.OUTAGE: "outage",
    Outcome.FAILED: "failed",
    Outcome.THROTTLED: "throttled",
    Outcome.REJECTED: "rejected",
}


class _Refusal(Exception):
    """An answer other than success, raised from deep in a handler and counted as ``result``."""

    def __init__(
        self,
        status: int,
        body: Mapping[str, Any],
        result: Result = "rejected",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.result = result
        self.headers = dict(headers or {})


class ProviderApi:
    """The aiohttp handlers, sharing one outbox, one fault injector and the credentials."""

    def __init__(
        self,
        store: SandboxStore,
        faults: FaultInjector,
        credentials: ProviderCredentials,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._faults = faults
        self._credentials = credentials
        self._wall = wall

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(
            "/twilio/2010-04-01/Accounts/{account_sid}/Messages.json",
            self._provider("sms", self._twilio),
        )
        app.router.add_post(
            "/whatsapp/{version}/{phone_number_id}/messages",
            self._provider("whatsapp", self._whatsapp),
        )
        # The literal colon is fine for aiohttp's router (only {...} is special); httpx and
        # aiohttp clients send it unescaped, as Google's client libraries do.
        app.router.add_post(
            "/fcm/v1/projects/{project_id}/messages:send", self._provider("push", self._fcm)
        )
        app.router.add_post("/webhook/{name}", self._provider("webhook", self._webhook))
        app.router.add_get("/_sandbox/messages", self._list_messages)
        app.router.add_delete("/_sandbox/messages", self._clear_messages)
        app.router.add_get("/_sandbox/counts", self._counts)
        app.router.add_get("/_sandbox/faults", self._get_faults)
        app.router.add_put("/_sandbox/faults/{channel}", self._put_faults)
        app.router.add_delete("/_sandbox/faults", self._reset_faults)
        app.router.add_get("/_sandbox/health", self._health)
        return app

    # -- the shared path of every provider request ------------------------------------------

    def _provider(
        self,
        channel: Channel,
        handle: Callable[[web.Request, Verdict], Awaitable[tuple[Result, int, dict[str, Any]]]],
    ) -> Handler:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            verdict = self._faults.decide(channel)
            if verdict.latency_s > 0:
                # The injected latency; this is the feature, not synchronisation.
                await asyncio.sleep(verdict.latency_s)
            try:
                if verdict.outcome is Outcome.OUTAGE:
                    raise self._fault(channel, verdict)
                result, status, body = await handle(request, verdict)
            except _Refusal as refusal:
                self._store.count(channel, refusal.result)
                return web.json_response(
                    refusal.body, status=refusal.status, headers=refusal.headers
                )
            self._store.count(channel, result)
            return web.json_response(body, status=status)

        return endpoint

    def _fault(self, channel: Channel, verdict: Verdict) -> _Refusal:
        status, body = FAULT_ANSWERS[channel][verdict.outcome]
        headers = {"X-Sandbox-Fault": verdict.outcome.value}
        if verdict.outcome is Outcome.THROTTLED:
            headers["Retry-After"] = str(verdict.retry_after_s)
        return _Refusal(status, body, _RESULT_OF[verdict.outcome], headers)

    def _transient_faults(self, channel: Channel, verdict: Verdict) -> None:
        """Throttling and errors: applied once the caller is known to be a customer."""
        if verdict.outcome in (Outcome.THROTTLED, Outcome.FAILED):
            raise self._fault(channel, verdict)

    def _rejection(self, channel: Channel, verdict: Verdict) -> None:
        if verdict.outcome is Outcome.REJECTED:
            raise self._fault(channel, verdict)

    # -- SMS: Twilio's Messages resource --------------------------------------------------------

    async def _twilio(
        self, request: web.Request, verdict: Verdict
    ) -> tuple[Result, int, dict[str, Any]]:
        account_sid = request.match_info["account_sid"]
        if not self._twilio_authorised(request.headers.get("Authorization", ""), account_sid):
            raise _Refusal(401, {"code": 20003, "message": "Authenticate", "status": 401})
        self._transient_faults("sms", verdict)
        form = await request.post()
        fields: dict[str, str] = {}
        for name in ("To", "From", "Body"):
            value = form.get(name)
            fields[name] = value if isinstance(value, str) else ""
        if not fields["To"]:
            raise _Refusal(400, _twilio_error(400, 21604, "A 'To' phone number is required."))
        if not fields["From"]:
            raise _Refusal(400, _twilio_error(400, 21603, "A 'From' phone number is required."))
        if not fields["Body"]:
            raise _Refusal(400, _twilio_error(400, 21602, "Message body is required."))
        if not _E164.fullmatch(fields["To"]):
            raise _Refusal(400, _twilio_error(400, 21211, "Invalid 'To' Phone Number"))
        token = request.headers.get("I-Twilio-Idempotency-Token") or None
        if token is not None:
            earlier = self._store.find_by_idempotency("sms", token)
            if earlier is not None:
                return "duplicate", 201, self._twilio_resource(earlier, account_sid)
        self._rejection("sms", verdict)
        sid = self._store.add_message(
            "sms",
            recipient=fields["To"],
            sender=fields["From"],
            body=fields["Body"],
            touchpoint_id=token,
            idempotency_key=token,
            headers=_kept_headers(request),
        )
        self._faults.accepted("sms")
        return "accepted", 201, self._twilio_resource(sid, account_sid)

    def _twilio_authorised(self, header: str, account_sid: str) -> bool:
        try:
            auth = BasicAuth.decode(header)
        except ValueError:
            return False
        expected = self._credentials
        return (
            _same(account_sid, expected.sms_account_sid)
            and _same(auth.login, account_sid)
            and _same(auth.password, expected.sms_auth_token)
        )

    def _twilio_resource(self, sid: str, account_sid: str) -> dict[str, Any]:
        message = self._store.get(sid)
        if message is None:  # pragma: no cover - the row was found or written just now
            raise RuntimeError(f"sandbox message {sid} vanished from the outbox")
        created = format_datetime(datetime.fromtimestamp(message["received_at"], UTC))
        return {
            "sid": sid,
            "account_sid": account_sid,
            "api_version": "2010-04-01",
            "status": "queued",
            "direction": "outbound-api",
            "to": message["recipient"],
            "from": message["sender"],
            "body": message["body"],
            "num_segments": "1",
            "date_created": created,
            "date_updated": created,
            "date_sent": None,
            "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
        }

    # -- WhatsApp Cloud API -------------------------------------------------------------------

    async def _whatsapp(
        self, request: web.Request, verdict: Verdict
    ) -> tuple[Result, int, dict[str, Any]]:
        if not _bearer_ok(request, self._credentials.whatsapp_token):
            raise _Refusal(401, _meta_error("Invalid OAuth access token.", 190))
        self._transient_faults("whatsapp", verdict)

        def invalid(detail: str) -> _Refusal:
            return _Refusal(400, _meta_error(f"(#100) {detail}", 100))

        payload = await _json_object(request, invalid)
        if payload.get("messaging_product") != "whatsapp":
            raise invalid("The parameter messaging_product is required and must be 'whatsapp'.")
        if payload.get("recipient_type", "individual") != "individual":
            raise invalid("Param recipient_type must be 'individual'.")
        to = payload.get("to")
        if not isinstance(to, str) or not _WHATSAPP_TO.fullmatch(to):
            raise invalid("Param to must be the recipient's phone number in digits.")
        if payload.get("type", "text") != "text":
            raise invalid(
                f"Param type {payload.get('type')!r} is not supported by the sandbox; use 'text'."
            )
        text = payload.get("text")
        if not isinstance(text, dict):
            raise invalid("Param text is required and must be an object.")
        body = text.get("body")
        if not isinstance(body, str) or not body:
            raise invalid("Param text['body'] is required and must be a non-empty string.")
        if not isinstance(text.get("preview_url", False), bool):
            raise invalid("Param text['preview_url'] must be a boolean.")
        touchpoint = payload.get("biz_opaque_callback_data")
        if touchpoint is not None and not isinstance(touchpoint, str):
            raise invalid("Param biz_opaque_callback_data must be a string.")
        self._rejection("whatsapp", verdict)
        wamid = self._store.add_message(
            "whatsapp",
            recipient=to,
            sender=request.match_info["phone_number_id"],
            body=body,
            touchpoint_id=touchpoint,
            headers=_kept_headers(request),
        )
        self._faults.accepted("whatsapp")
        return (
            "accepted",
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                "messages": [{"id": wamid}],
            },
        )

    # -- push: FCM HTTP v1 --------------------------------------------------------------------

    async def _fcm(
        self, request: web.Request, verdict: Verdict
    ) -> tuple[Result, int, dict[str, Any]]:
        if not _bearer_ok(request, self._credentials.push_token):
            raise _Refusal(
                401,
                _google_error(
                    401,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential.",
                    None,
                ),
            )
        self._transient_faults("push", verdict)

        def invalid(detail: str) -> _Refusal:
            return _Refusal(400, _google_error(400, "INVALID_ARGUMENT", detail, "INVALID_ARGUMENT"))

        payload = await _json_object(request, invalid)
        message = payload.get("message")
        if not isinstance(message, dict):
            raise invalid("Invalid JSON payload: 'message' must be an object.")
        token = message.get("token")
        if not isinstance(token, str) or not token:
            raise invalid("The registration token is not a valid FCM registration token")
        notification = message.get("notification", {})
        if not isinstance(notification, dict) or not all(
            isinstance(notification.get(key, ""), str) for key in ("title", "body")
        ):
            raise invalid("Invalid value at 'message.notification': title and body are strings.")
        data = message.get("data", {})
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise invalid("Invalid value at 'message.data': every value must be a string.")
        if token.startswith("unregistered"):
            raise _Refusal(
                404,
                _google_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"),
            )
        self._rejection("push", verdict)
        project_id = request.match_info["project_id"]
        name = self._store.add_message(
            "push",
            recipient=token,
            sender=project_id,
            subject=notification.get("title"),
            body=json.dumps(payload, sort_keys=True),
            touchpoint_id=data.get("touchpoint_id"),
            headers=_kept_headers(request),
            provider_id=lambda number: f"projects/{project_id}/messages/{number:019d}",
        )
        self._faults.accepted("push")
        return "accepted", 200, {"name": name}

    # -- signed webhooks ---------------------------------------------------------------------

    async def _webhook(
        self, request: web.Request, verdict: Verdict
    ) -> tuple[Result, int, dict[str, Any]]:
        raw = await request.read()
        problem = self._signature_problem(request.headers.get("Aftercare-Signature"), raw)
        if problem is not None:
            raise _Refusal(401, {"error": "bad signature", "detail": problem})
        self._transient_faults("webhook", verdict)
        try:
            text = raw.decode("utf-8")
            json.loads(text)
        except ValueError as exc:
            raise _Refusal(400, {"error": f"the body is not JSON: {exc}"}) from None
        key = request.headers.get("Idempotency-Key") or None
        if key is not None:
            earlier = self._store.find_by_idempotency("webhook", key)
            if earlier is not None:
                return "duplicate", 200, {"id": earlier, "received": True}
        self._rejection("webhook", verdict)
        webhook_id = self._store.add_message(
            "webhook",
            recipient=request.match_info["name"],
            body=text,
            touchpoint_id=key,
            idempotency_key=key,
            headers=_kept_headers(request),
        )
        self._faults.accepted("webhook")
        return "accepted", 200, {"id": webhook_id, "received": True}

    def _signature_problem(self, header: str | None, raw: bytes) -> str | None:
        """Why the ``Aftercare-Signature`` header does not vouch for ``raw``; None if it does."""
        if not header:
            return "no Aftercare-Signature header"
        parts: dict[str, list[str]] = {}
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            parts.setdefault(name, []).append(value)
        timestamps = parts.get("t", [])
        if len(timestamps) != 1 or not timestamps[0].isdigit():
            return "the header needs exactly one t=<unix seconds>"
        age = self._wall() - int(timestamps[0])
        if abs(age) > SIGNATURE_TOLERANCE_S:
            return f"t is {age:.0f} s from the sandbox's clock (at most {SIGNATURE_TOLERANCE_S})"
        expected = hmac.new(
            self._credentials.webhook_secret.encode(),
            timestamps[0].encode() + b"." + raw,
            hashlib.sha256,
        ).hexdigest()
        # Several v1= values are allowed, so that a secret can be rotated without a gap.
        if not any(_same(given, expected) for given in parts.get("v1", [])):
            return "no v1= matches HMAC-SHA256(secret, '<t>.<body>')"
        return None

    # -- controls -----------------------------------------------------------------------------

    async def _list_messages(self, request: web.Request) -> web.Response:
        query = request.query
        channel = query.get("channel") or None
        if channel is not None and channel not in CHANNELS:
            return _control_error(400, f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
        since = query.get("since_id", "0") or "0"
        if not since.isdigit():
            return _control_error(400, f"since_id must be a whole number >= 0, got {since!r}")
        messages = self._store.messages(
            channel=_channel(channel) if channel else None,
            touchpoint_id=query.get("touchpoint_id") or None,
            since_id=int(since),
        )
        return web.json_response(messages)

    async def _clear_messages(self, request: web.Request) -> web.Response:
        return web.json_response({"deleted": self._store.clear()})

    async def _counts(self, request: web.Request) -> web.Response:
        return web.json_response(self._store.counts())

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(
            {channel: faults.to_json() for channel, faults in self._faults.all().items()}
        )

    async def _put_faults(self, request: web.Request) -> web.Response:
        name = request.match_info["channel"]
        if name not in CHANNELS:
            return _control_error(404, f"channel {name!r} is not one of {', '.join(CHANNELS)}")
        try:
            changes = json.loads(await request.text())
        except ValueError as exc:
            return _control_error(400, f"the body is not JSON: {exc}")
        if not isinstance(changes, dict):
            return _control_error(400, "the body must be a JSON object of fault fields")
        try:
            faults = self._faults.update(_channel(name), changes)
        except FaultError as exc:
            return _control_error(400, str(exc))
        return web.json_response(faults.to_json())

    async def _reset_faults(self, request: web.Request) -> web.Response:
        self._faults.reset()
        return await self._get_faults(request)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


def _channel(name: str) -> Channel:
    for channel in CHANNELS:
        if channel == name:
            return channel
    raise ValueError(f"{name!r} is not a channel")


def _control_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _bearer_ok(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and _same(given.strip(), token)


async def _json_object(request: web.Request, invalid: Callable[[str], _Refusal]) -> dict[str, Any]:
    try:
        payload = json.loads(await request.read())
    except ValueError as exc:
        raise invalid(f"Invalid JSON payload received: {exc}") from None
    if not isinstance(payload, dict):
        raise invalid("Invalid JSON payload received: the body must be a JSON object.")
    return payload


def _kept_headers(request: web.Request) -> dict[str, str]:
    """The request's headers as stored with the message: all but the credentials."""
    return {
        name: value for name, value in request.headers.items() if name.lower() != "authorization"
    }


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that also copes with non-ASCII input (compare_digest on str
    raises TypeError for it)."""
    return hmac.compare_digest(given.encode(), expected.encode())
