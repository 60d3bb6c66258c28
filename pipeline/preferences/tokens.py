"""Signed links: what lets a click change one customer's preferences, and nothing else.

A token carries a customer id, a scope and an expiry, signed (itsdangerous, HMAC-SHA256) under a
key only the senders, which sign, and the preferences service, which verifies, know
(``AFTERCARE_PREFERENCES_KEY``). A token that was forged, altered in any character, signed with
another key, is past its expiry, or is used for another customer or scope than it names is refused;
the service then changes nothing.

Scopes
    ``email``, ``sms``, ``whatsapp``, ``push``, ``in_app``: stop engagement and marketing on that
    channel (what the one-click link in an engagement email does); transactional messages still
    use it. ``marketing``: withdraw the marketing opt-in (the link in marketing mail).
    ``preferences``: read and change all of the customer's preferences (a preference centre link).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeSerializer
from itsdangerous.encoding import base64_decode, base64_encode

from pipeline.journeys.model import Channel, Priority

CHANNEL_SCOPES = ("email", "sms", "whatsapp", "push", "in_app")
SCOPES = (*CHANNEL_SCOPES, "marketing", "preferences")
_SALT = "aftercare-preferences-v1"  # another purpose signing with the same key cannot pass here


class TokenError(Exception):
    """Why a token is refused (the message is safe to log: it names no customer)."""


@dataclass(frozen=True)
class Grant:
    """What a valid token allows."""

    customer_id: str
    scope: str
    expires_at: datetime

    @property
    def channel(self) -> Channel | None:
        return Channel(self.scope.upper()) if self.scope in CHANNEL_SCOPES else None


class Signer:
    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the preferences key is empty; set AFTERCARE_PREFERENCES_KEY")
        self._serializer = URLSafeSerializer(
            key, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )

    def sign(self, customer_id: str, scope: str, expires_at: datetime) -> str:
        if scope not in SCOPES:
            raise ValueError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
        payload = {"c": customer_id, "s": scope, "x": int(expires_at.timestamp())}
        token: str = self._serializer.dumps(payload)
        return token

    def verify(self, token: str, now: datetime) -> Grant:
        try:
            payload: Any = self._serializer.loads(token)
        except BadSignature:
            raise TokenError("the signature does not match") from None
        # Base64 leaves a few bits of the last character unused: a signature altered only there
        # decodes to the same bytes. Only its canonical spelling is accepted. (The payload part
        # is signed as written, so any change to it already fails.)
        signature = token.rpartition(".")[2]
        if base64_encode(base64_decode(signature)).decode("ascii") != signature:
            raise TokenError("the signature is not written as it was signed")
        if not isinstance(payload, dict) or set(payload) != {"c", "s", "x"}:
            raise TokenError("not a preferences token")
        customer, scope, expiry = payload["c"], payload["s"], payload["x"]
        if not isinstance(customer, str) or scope not in SCOPES or not isinstance(expiry, int):
            raise TokenError("not a preferences token")
        expires_at = datetime.fromtimestamp(expiry, UTC)
        if now >= expires_at:
            raise TokenError(f"expired at {expires_at.isoformat()}")
        return Grant(customer, scope, expires_at)


@dataclass(frozen=True)
class UnsubscribeLinks:
    """The one-click link of each email: ``<base_url>/unsubscribe?token=...``.

    Engagement mail unsubscribes from engagement email, marketing mail from marketing. The expiry
    counts from the touchpoint's due time, so a message sent again after a crash carries the same
    link, and the header and the footer of one message agree.
    """

    base_url: str
    signer: Signer
    validity: timedelta

    def scope(self, priority: Priority) -> str:
        return "marketing" if priority is Priority.MARKETING else "email"

    def link(self, customer_id: str, priority: Priority, due_at: datetime) -> str:
        token = self.signer.sign(customer_id, self.scope(priority), due_at + self.validity)
        return f"{self.base_url.rstrip('/')}/unsubscribe?token={quote(token, safe='')}"

    def for_command(self, command: Any) -> str:
        """The link for a TouchpointCommand record."""
        return self.link(
            str(command["customer_id"]), Priority(command["priority"]), command["due_at"]
        )
