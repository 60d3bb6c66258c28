"""The message templates and their renderer.

Every step of the default journeys, on every channel it lists, in English and German, renders from
a realistic command and from an empty one; the renderer falls back to English, names the file,
line, channel and locale of every problem, keeps templates in the sandbox, escapes data in HTML
and only there, and formats money and dates the way each language writes them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.codec import SchemaSet
from pipeline.journeys.model import Channel
from pipeline.journeysfile import load_journeys
from pipeline.templates import (
    SMS_MAX_CHARS,
    Rendered,
    Renderer,
    TemplateError,
    format_date,
    format_listing,
    format_money,
)
from pipeline.templates.render import FILES
from tests.samples import T0, touchpoint_command

BOOK = load_journeys()
PRIORITY = {journey.name: journey.priority.value for journey in BOOK.journeys}
# (template, channel) for every step of every default journey, on every channel but the webhook.
CASES = [
    pytest.param(step.template, channel.value, id=f"{step.template}-{channel.value}")
    for journey in BOOK.journeys
    for step in journey.steps
    for channel in step.channels
    if channel is not Channel.WEBHOOK
]
LANGUAGES = ("en", "de")
MALICIOUS = "<script>alert(1)</script>"
# The GSM 03.38 alphabet (basic set and extension table): SMS text outside it goes as UCS-2, with
# 70 instead of 160 characters per segment.
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


def command(
    template: str = "order_confirmation.confirm",
    *,
    locale: str = "en-GB",
    timezone: str = "Europe/Berlin",
    priority: str | None = None,
    order_id: str | None = "A-77812",
    **context: Any,
) -> dict[str, Any]:
    """A TouchpointCommand record as a sender decodes it, with everything a message can show.

    ``context`` overrides fields of the record's context.
    """
    journey, step = template.split(".")
    record = touchpoint_command(
        journey=journey,
        step=step,
        template=template,
        order_id=order_id,
        priority=priority or PRIORITY.get(journey, "TRANSACTIONAL"),
        channels=["EMAIL", "SMS", "WHATSAPP", "PUSH", "IN_APP"],
        recipient={
            "email": "ada@example.org",
            "phone": "+4915112345678",
            "push_token": "push-token-1",
            "locale": locale,
            "timezone": timezone,
        },
    )
    record["context"].update(
        shipment_id="ship-1",
        carrier="DHL",
        tracking_url="https://tracking.example.org/ship-1",
        eta=datetime(2026, 3, 12, 15, 0, tzinfo=UTC),
        reason="Address could not be found",
        rating=5,
        variables={
            "payment_url": "https://shop.example/account/payment",
            "tips_url": "https://shop.example/guides/barista-900",
            "help_url": "https://shop.example/help/setup",
            "feedback_url": "https://shop.example/feedback",
            "review_url": "https://shop.example/review/CM-900",
            "shop_url": "https://shop.example/",
        },
    )
    record["context"].update(context)
    return record


def empty(template: str, locale: str) -> dict[str, Any]:
    """A command with every optional field of its context empty: what the worker sends for an
    order it never saw, or a parcel without a carrier."""
    return command(
        template,
        locale=locale,
        order_id=None if template.startswith("reengagement.") else "A-77812",
        items=[],
        total_minor=None,
        currency=None,
        shipment_id=None,
        carrier=None,
        tracking_url=None,
        eta=None,
        reason=None,
        categories=[],
        rating=None,
        variables={},
    )


def parts(rendered: Rendered) -> list[str]:
    return [part for part in (rendered.subject, rendered.text, rendered.html) if part is not None]


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- every journey step, channel and language ---------------------------------------------------


def test_the_command_helper_makes_a_valid_touchpoint_command(schemas: SchemaSet) -> None:
    name = "io.aftercare.v1.TouchpointCommand"
    record = command()
    assert schemas.decode(schemas.encode(name, record), name).record == record


def test_there_is_a_file_for_every_step_and_channel_and_no_other() -> None:
    wanted = {f"{template}.{channel.lower()}.j2" for template, channel in (c.values for c in CASES)}
    for language in LANGUAGES:
        assert {p.name for p in (FILES / language).glob("*.j2")} == wanted, language


def test_the_startup_check_passes_for_the_shipped_templates(renderer: Renderer) -> None:
    assert renderer.check(BOOK) == len(list(FILES.rglob("*.j2")))


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("template", "channel"), CASES)
def test_every_step_renders_on_its_channels(
    renderer: Renderer, template: str, channel: str, language: str
) -> None:
    rendered = renderer.render(command(template), channel, language)
    assert rendered.text
    if channel == "EMAIL":
        assert rendered.subject
        assert rendered.html is not None
        assert rendered.html.startswith("<!DOCTYPE html>")
        assert f'<html lang="{language}">' in rendered.html
        assert rendered.html.rstrip().endswith("</html>")
    else:
        assert rendered.html is None
        assert bool(rendered.subject) is (channel in ("PUSH", "IN_APP"))
    for part in parts(rendered):
        assert "{{" not in part
        assert "{%" not in part
        assert "{#" not in part
        assert "None" not in part
    if channel == "SMS":
        assert len(rendered.text) <= 300, rendered.text
        assert set(rendered.text) <= GSM7, set(rendered.text) - GSM7


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("template", "channel"), CASES)
def test_every_step_renders_from_an_empty_context(
    renderer: Renderer, template: str, channel: str, language: str
) -> None:
    rendered = renderer.render(empty(template, language), channel)
    assert rendered.text
    for part in parts(rendered):
        assert "None" not in part
        assert "{{" not in part


@pytest.mark.parametrize(("template", "channel"), CASES)
def test_german_is_not_english(renderer: Renderer, template: str, channel: str) -> None:
    english = renderer.render(command(template), channel, "en")
    german = renderer.render(command(template), channel, "de")
    assert german.text != english.text
    assert german.subject != english.subject or english.subject is None


def test_the_order_confirmation_lists_items_total_and_what_happens_next(
    renderer: Renderer,
) -> None:
    rendered = renderer.render(command(), "EMAIL", "en")
    assert "1 x Barista 900 espresso machine: €499.00" in rendered.text
    assert "2 x House blend beans 1 kg: €37.00" in rendered.text
    assert "Total: €536.00" in rendered.text
    assert "What happens next" in rendered.text
    assert rendered.html is not None
    assert "€536.00" in rendered.html
    german = renderer.render(command(), "EMAIL", "de")
    assert "Gesamtbetrag: 536,00 €" in german.text


def test_shipped_has_the_tracking_link_carrier_and_local_eta(renderer: Renderer) -> None:
    # 23:30 UTC on the 11th is already the 12th in Berlin.
    late = datetime(2026, 3, 11, 23, 30, tzinfo=UTC)
    sms = renderer.render(command("shipped.tracking", eta=late), "SMS", "de")
    assert "DHL" in sms.text
    assert "https://tracking.example.org/ship-1" in sms.text
    assert "12. März 2026" in sms.text
    in_utc = renderer.render(command("shipped.tracking", eta=late, timezone="UTC"), "SMS", "en")
    assert "11 March 2026" in in_utc.text


# -- locale --------------------------------------------------------------------------------------


def test_a_language_without_templates_falls_back_to_english(renderer: Renderer) -> None:
    french = renderer.render(command(locale="fr-FR"), "EMAIL")
    assert french == renderer.render(command(), "EMAIL", "en")


def test_the_locale_defaults_to_the_recipients(renderer: Renderer) -> None:
    assert renderer.render(command(locale="de-DE"), "IN_APP") == (
        renderer.render(command(), "IN_APP", "de")
    )


def test_the_default_locale_is_a_constructor_parameter(tmp_path: Path) -> None:
    write(tmp_path, "de/x.sms.sms.j2", "Hallo")
    write(tmp_path, "en/x.sms.sms.j2", "Hello")
    german_first = Renderer(tmp_path, default_locale="de")
    assert german_first.render(command("x.sms", locale="fr"), "SMS").text == "Hallo"
    assert Renderer(tmp_path).render(command("x.sms", locale="fr"), "SMS").text == "Hello"


# -- errors --------------------------------------------------------------------------------------


def test_a_missing_template_names_the_files_channel_and_locale(renderer: Renderer) -> None:
    with pytest.raises(TemplateError) as caught:
        renderer.render(command("no_such.step", locale="fr-FR"), "EMAIL")
    message = str(caught.value)
    assert str(FILES / "fr" / "no_such.step.email.j2") in message
    assert str(FILES / "en" / "no_such.step.email.j2") in message
    assert "EMAIL" in message
    assert "fr-FR" in message
    assert caught.value.channel == "EMAIL"
    assert caught.value.locale == "fr-FR"


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "en/x.sms.sms.j2", "Hello\n{% if order_id %}\nno end\n")
    with pytest.raises(TemplateError) as caught:
        Renderer(tmp_path).render(command("x.sms"), "SMS", "en-GB")
    message = str(caught.value)
    assert f"{path}:" in message
    assert caught.value.line is not None
    assert "syntax" in message
    assert "SMS" in message
    assert "en-GB" in message


def test_the_startup_check_reports_every_syntax_error_with_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "en/a.ok.sms.j2", "Fine {{ order_id }}")
    first = write(tmp_path, "en/b.bad.sms.j2", "one\ntwo {{ order_id \n")
    second = write(tmp_path, "de/c.bad.push.j2", "{% block title %}x{% endblock %}\n{% endif %}\n")
    with pytest.raises(TemplateError) as caught:
        Renderer(tmp_path).check()
    message = str(caught.value)
    assert "2 problem(s)" in message
    assert f"{first}:2:" in message
    assert f"{second}:2:" in message


def test_the_startup_check_reports_files_that_miss_what_their_channel_needs(
    tmp_path: Path,
) -> None:
    push = write(tmp_path, "en/a.b.push.j2", "{% block title %}Hi{% endblock %}")
    email = write(
        tmp_path,
        "en/a.b.email.j2",
        "{% block subject %}s{% endblock %}{% block text %}t{% endblock %}"
        "{% block html %}h{% endblock %}",
    )
    fax = write(tmp_path, "en/a.b.fax.j2", "Hi")
    with pytest.raises(TemplateError) as caught:
        Renderer(tmp_path).check()
    message = str(caught.value)
    assert f"{push}: a PUSH template needs {{% block body %}}" in message
    assert f"{email}:1: an email template starts with {{% extends" in message
    assert f"{fax}: 'fax' is not a channel" in message


def test_the_startup_check_reports_steps_without_a_template(tmp_path: Path) -> None:
    write(
        tmp_path,
        "en/order_confirmation.confirm.in_app.j2",
        "{% block title %}T{% endblock %}{% block body %}B{% endblock %}",
    )
    with pytest.raises(TemplateError) as caught:
        Renderer(tmp_path).check(BOOK)
    message = str(caught.value)
    confirmation = BOOK.journey("order_confirmation")
    assert confirmation is not None
    assert confirmation.steps[0].line
    assert (
        f"{BOOK.source}:{confirmation.steps[0].line}: journey "
        "order_confirmation step confirm sends template order_confirmation.confirm on email, but "
        f"{tmp_path}/en/order_confirmation.confirm.email.j2 is missing"
    ) in message
    assert "order_confirmation.confirm.in_app.j2" not in message


def test_an_undefined_name_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "en/x.sms.sms.j2", "Hello\nyour {{ order_number }} is here")
    with pytest.raises(TemplateError) as caught:
        Renderer(tmp_path).render(command("x.sms"), "SMS")
    message = str(caught.value)
    assert f"{path}:2" in message
    assert "'order_number' is undefined" in message
    assert caught.value.line == 2


def test_a_missing_key_of_a_record_is_an_error_not_an_empty_string(tmp_path: Path) -> None:
    write(tmp_path, "en/x.sms.sms.j2", "Hi {{ variables.coupon }}")
    with pytest.raises(TemplateError, match="no attribute 'coupon'"):
        Renderer(tmp_path).render(command("x.sms"), "SMS")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ command.__class__.__init__.__globals__ }}",
        "{{ items[0].__class__ }}",
        "{{ (0).__class__.__subclasses__() }}",
    ],
)
def test_the_sandbox_refuses_python_internals(tmp_path: Path, source: str) -> None:
    write(tmp_path, "en/x.sms.sms.j2", source)
    with pytest.raises(TemplateError, match="refused by the sandbox"):
        Renderer(tmp_path).render(command("x.sms"), "SMS")


def test_a_template_cannot_change_the_command(tmp_path: Path) -> None:
    write(tmp_path, "en/x.sms.sms.j2", "{{ command.context['items'].clear() }}")
    record = command("x.sms")
    with pytest.raises(TemplateError, match="refused by the sandbox"):
        Renderer(tmp_path).render(record, "SMS")
    assert len(record["context"]["items"]) == 2


def test_an_sms_longer_than_1600_characters_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "en/x.long.sms.j2", "{{ 'x' * 1601 }}")
    write(tmp_path, "en/x.max.sms.j2", "{{ 'x' * 1600 }}")
    renderer = Renderer(tmp_path)
    assert len(renderer.render(command("x.max"), "SMS").text) == SMS_MAX_CHARS
    with pytest.raises(TemplateError, match="1601 characters, more than the 1,600"):
        renderer.render(command("x.long"), "SMS")


def test_an_error_in_the_layout_names_the_layout_and_the_email(tmp_path: Path) -> None:
    layout = write(
        tmp_path, "_layout.html.j2", "<html>\n{{ shop_name }}\n{% block html %}{% endblock %}"
    )
    email = write(
        tmp_path,
        "en/x.y.email.j2",
        '{% extends "_layout.html.j2" %}{% block subject %}S{% endblock %}'
        "{% block text %}T{% endblock %}{% block html %}H{% endblock %}",
    )
    with pytest.raises(TemplateError) as caught:
        Renderer(tmp_path).render(command("x.y"), "EMAIL")
    assert f"{layout}:2" in str(caught.value)
    assert f"rendering {email}" in str(caught.value)


def test_a_filter_given_nothing_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "en/x.sms.sms.j2", "{{ command.context.total_minor | money(currency) }}")
    with pytest.raises(TemplateError, match="minor units"):
        Renderer(tmp_path).render(command("x.sms", total_minor=None), "SMS")


def test_an_unknown_time_zone_is_an_error(renderer: Renderer) -> None:
    with pytest.raises(TemplateError, match="'Mars/Olympus' is not a known IANA time zone"):
        renderer.render(command("shipped.tracking", timezone="Mars/Olympus"), "SMS")


def test_an_unknown_channel_is_an_error(renderer: Renderer) -> None:
    with pytest.raises(TemplateError, match="'FAX' is not a channel"):
        renderer.render(command(), "FAX")


# -- escaping ------------------------------------------------------------------------------------


def test_data_is_escaped_in_html_and_left_alone_in_text(renderer: Renderer) -> None:
    items = [
        {
            "sku": "X-1",
            "name": MALICIOUS,
            "category": "toys",
            "quantity": 1,
            "unit_price_minor": 100,
        }
    ]
    rendered = renderer.render(command("product_education.tips", items=items), "EMAIL", "en")
    assert rendered.html is not None
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert MALICIOUS not in rendered.html
    # The subject (with the product name) is escaped where the layout uses it as the page title.
    assert "<title>Getting the most out of your &lt;script&gt;" in rendered.html
    assert MALICIOUS in rendered.text
    assert rendered.subject == f"Getting the most out of your {MALICIOUS}"
    sms = renderer.render(command("delivered.alert", items=items), "SMS", "en")
    assert MALICIOUS in sms.text


def test_links_in_html_are_attribute_escaped(renderer: Renderer) -> None:
    rendered = renderer.render(command("feedback_request.ask"), "EMAIL", "en")
    assert rendered.html is not None
    assert 'href="https://shop.example/feedback?order=A-77812&amp;rating=5"' in rendered.html


def test_a_line_break_in_data_does_not_split_a_subject(renderer: Renderer) -> None:
    rendered = renderer.render(command(order_id="A-1\r\nBcc: eve@example.org"), "EMAIL", "en")
    assert rendered.subject == "Thank you for your order A-1 Bcc: eve@example.org"


# -- the footer ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "has_link"),
    [("TRANSACTIONAL", False), ("ENGAGEMENT", True), ("MARKETING", True)],
)
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_preferences_link_is_in_engagement_and_marketing_email_only(
    renderer: Renderer, priority: str, has_link: bool, language: str
) -> None:
    rendered = renderer.render(command(priority=priority), "EMAIL", language)
    url = "https://shop.example/preferences?customer=cust-1&touchpoint=tp-1"
    assert rendered.html is not None
    assert (url.replace("&", "&amp;") in rendered.html) is has_link
    assert (url in rendered.text) is has_link


def test_the_unsubscribe_url_is_a_parameter_and_quotes_the_ids(tmp_path: Path) -> None:
    write(tmp_path, "en/x.sms.sms.j2", "{{ unsubscribe_url }}")
    renderer = Renderer(
        tmp_path, unsubscribe_url="https://s.example/u/{customer_id}/{touchpoint_id}"
    )
    record = command("x.sms")
    record["customer_id"] = "cust 1/&2"
    assert renderer.render(record, "SMS").text == "https://s.example/u/cust%201%2F%262/tp-1"
    with pytest.raises(ValueError, match="unsubscribe_url"):
        Renderer(tmp_path, unsubscribe_url="https://s.example/{customer}")


# -- webhook -------------------------------------------------------------------------------------


def test_the_webhook_gets_the_command_as_json(renderer: Renderer) -> None:
    rendered = renderer.render(command("support_handoff.task", rating=1), "WEBHOOK")
    assert rendered.subject is None
    assert rendered.html is None
    payload = json.loads(rendered.text)
    assert payload["touchpoint_id"] == "tp-1"
    assert payload["journey"] == "support_handoff"
    assert payload["context"]["rating"] == 1
    assert payload["due_at"] == "2026-03-02T09:30:00.000Z"


# -- formatting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "language", "expected"),
    [
        (4999, "EUR", "en", "€49.99"),
        (4999, "EUR", "de", "49,99 €"),
        (123456789, "EUR", "en", "€1,234,567.89"),
        (123456789, "EUR", "de", "1.234.567,89 €"),
        (5, "EUR", "de", "0,05 €"),
        (-500, "EUR", "en", "-€5.00"),
        (-500, "EUR", "de", "-5,00 €"),
        (4999, "USD", "en", "USD 49.99"),
        (4999, "USD", "de", "49,99 USD"),
        (120000, "JPY", "en", "JPY 120,000"),
        (1234, "KWD", "de", "1,234 KWD"),
        (4999, "EUR", "fr", "€49.99"),
    ],
)
def test_money(minor: int, currency: str, language: str, expected: str) -> None:
    assert format_money(minor, currency, language) == expected


@pytest.mark.parametrize(
    ("moment", "zone", "language", "expected"),
    [
        (datetime(2026, 3, 12, 10, 0, tzinfo=UTC), "Europe/Berlin", "en", "12 March 2026"),
        (datetime(2026, 3, 12, 10, 0, tzinfo=UTC), "Europe/Berlin", "de", "12. März 2026"),
        (datetime(2026, 3, 11, 23, 30, tzinfo=UTC), "Europe/Berlin", "de", "12. März 2026"),
        (datetime(2026, 3, 12, 3, 0, tzinfo=UTC), "America/New_York", "en", "11 March 2026"),
        (datetime(2026, 12, 1, 0, 0, tzinfo=UTC), "UTC", "de", "1. Dezember 2026"),
        (datetime(2026, 5, 1, 0, 0, tzinfo=UTC), "UTC", "de", "1. Mai 2026"),
    ],
)
def test_localdate(moment: datetime, zone: str, language: str, expected: str) -> None:
    assert format_date(moment, zone, language) == expected


def test_localdate_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        format_date(datetime(2026, 3, 12), "UTC", "en")  # noqa: DTZ001 -- the point of the test


def test_listing() -> None:
    assert format_listing([], "en") == ""
    assert format_listing(["coffee"], "en") == "coffee"
    assert format_listing(["a", "b", "c"], "en") == "a, b and c"
    assert format_listing(["a", "b"], "de") == "a und b"


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "€49.99 on 12 March 2026: a and b"), ("de", "49,99 € am 12. März 2026: a und b")],
)
def test_the_filters_follow_the_language_of_the_template(
    tmp_path: Path, language: str, expected: str
) -> None:
    write(
        tmp_path,
        "en/x.sms.sms.j2",
        "{{ 4999 | money('EUR') }} on {{ command.due_at | localdate }}: {{ ['a', 'b'] | listing }}",
    )
    write(
        tmp_path,
        "de/x.sms.sms.j2",
        "{{ 4999 | money('EUR') }} am {{ command.due_at | localdate }}: {{ ['a', 'b'] | listing }}",
    )
    record = command("x.sms")
    record["due_at"] = T0 + timedelta(days=10)
    assert Renderer(tmp_path).render(record, "SMS", language).text == expected
