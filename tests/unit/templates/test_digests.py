"""A digest message lists every order it stands for, in both languages, on every channel."""

from __future__ import annotations

import pytest

from pipeline.templates import Renderer
from tests.unit.templates.test_render import command

RENDERER = Renderer()
BEANS = {"sku": "BN-HOUSE-1K", "name": "House blend beans 1 kg", "category": "coffee",
         "quantity": 2, "unit_price_minor": 1850}  # fmt: skip


def _digest(locale: str) -> dict[str, object]:
    record = command("feedback_request.ask", locale=locale, priority="ENGAGEMENT")
    member_context = {**record["context"], "items": [BEANS]}
    record["digest"] = [
        {"touchpoint_id": "tp-2", "order_id": "A-77813", "due_at": record["due_at"],
         "context": member_context},
    ]  # fmt: skip
    return record


@pytest.mark.parametrize(
    ("locale", "subject", "push"),
    [
        ("en-GB", "How do you like your 2 orders?", "Rate your 2 orders"),
        ("de-DE", "Wie gefallen Ihnen Ihre 2 Bestellungen?", "Bewerten Sie Ihre 2 Bestellungen"),
    ],
)
def test_the_feedback_request_digest_lists_both_orders(
    locale: str, subject: str, push: str
) -> None:
    email = RENDERER.render(_digest(locale), "EMAIL")
    assert email.subject == subject
    assert "Barista 900" in email.text
    assert "House blend beans 1 kg" in email.text
    assert email.html is not None
    assert email.html.count("rating=5") == 2  # a row of rating links per order
    assert "order=A-77813" in email.html
    assert RENDERER.render(_digest(locale), "PUSH").text.startswith(push)


def test_a_single_request_reads_as_before() -> None:
    email = RENDERER.render(command("feedback_request.ask", priority="ENGAGEMENT"), "EMAIL")
    assert email.subject is not None
    assert email.subject.startswith("How do you like your")
    assert "orders" not in email.subject
