"""Signed preference links: what a token names is all it can do, and only until it expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from pipeline.journeys.model import Channel, Priority
from pipeline.preferences.tokens import Signer, TokenError, UnsubscribeLinks

NOW = datetime(2026, 3, 12, 9, 30, tzinfo=UTC)
SIGNER = Signer("a-long-random-secret")


def test_a_token_carries_its_customer_scope_and_expiry() -> None:
    token = SIGNER.sign("cust-1", "email", NOW + timedelta(days=90))
    grant = SIGNER.verify(token, NOW)
    assert (grant.customer_id, grant.scope, grant.channel) == ("cust-1", "email", Channel.EMAIL)
    assert grant.expires_at == NOW + timedelta(days=90)
    assert SIGNER.verify(SIGNER.sign("c", "marketing", NOW + timedelta(1)), NOW).channel is None


def test_an_altered_token_is_refused_whatever_character_changed() -> None:
    token = SIGNER.sign("cust-1", "email", NOW + timedelta(days=90))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    for index in range(len(token)):
        for replacement in alphabet:
            if replacement == token[index]:
                continue
            altered = token[:index] + replacement + token[index + 1 :]
            with pytest.raises(TokenError):
                SIGNER.verify(altered, NOW)


def test_a_token_signed_with_another_key_or_made_up_is_refused() -> None:
    other = Signer("another-secret").sign("cust-1", "preferences", NOW + timedelta(days=1))
    for token in (other, "", "not-a-token", "eyJjIjoiY3VzdC0xIiwicyI6ImVtYWlsIiwieCI6OX0.x"):
        with pytest.raises(TokenError):
            SIGNER.verify(token, NOW)


def test_an_expired_token_is_refused() -> None:
    token = SIGNER.sign("cust-1", "email", NOW + timedelta(days=1))
    SIGNER.verify(token, NOW + timedelta(hours=23))
    with pytest.raises(TokenError, match="expired"):
        SIGNER.verify(token, NOW + timedelta(days=1))


def test_unknown_scopes_and_empty_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="scope"):
        SIGNER.sign("cust-1", "everything", NOW)
    with pytest.raises(ValueError, match="AFTERCARE_PREFERENCES_KEY"):
        Signer("")


def test_the_link_of_an_email_is_stable_and_scoped_by_priority() -> None:
    links = UnsubscribeLinks("https://prefs.shop.example/", SIGNER, timedelta(days=90))
    command = {"customer_id": "cust 1/&", "priority": "ENGAGEMENT", "due_at": NOW}
    link = links.for_command(command)
    assert link == links.for_command(dict(command))  # sent again after a crash: the same link
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "prefs.shop.example",
        "/unsubscribe",
    )
    (token,) = parse_qs(parts.query)["token"]
    grant = SIGNER.verify(unquote(token), NOW)
    assert (grant.customer_id, grant.scope) == ("cust 1/&", "email")
    assert grant.expires_at == NOW + timedelta(days=90)
    marketing = links.link("cust-1", Priority.MARKETING, NOW)
    (token,) = parse_qs(urlsplit(marketing).query)["token"]
    assert SIGNER.verify(token, NOW).scope == "marketing"
