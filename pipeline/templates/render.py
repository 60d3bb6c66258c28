"""Rendering a touchpoint command into the words of one channel, in the recipient's language.

Templates are data that operators edit, so they run in Jinja2's sandbox, every name they use must
exist (``StrictUndefined``: a typo fails the message instead of sending "Hello ,"), and whatever
goes wrong while rendering one is a :class:`TemplateError` for that touchpoint, which the sender
records as FAILED; nothing a template does can crash a sender.

Files are ``<directory>/<language>/<template>.<channel>.j2`` (``de/shipped.tracking.sms.j2``). A
language without the file falls back to the default language (``en``); names beginning with ``_``
are shared pieces (the email layout ``_layout.html.j2``, the text footer ``_footer.text.j2``).

What each channel's file holds:

- EMAIL: blocks ``subject``, ``text`` and ``html``; the file starts with
  ``{% extends "_layout.html.j2" %}``. Subject and text are rendered as single blocks (the layout
  plays no part in them); the HTML part is the whole template rendered, that is the layout with the
  ``html`` block in it. A block rendered alone cannot pull in a parent, and a parent is the only way
  a layout can wrap content that is written as markup, hence this split.
- PUSH and IN_APP: blocks ``title`` and ``body``.
- SMS and WHATSAPP: the whole file is the text (SMS at most 1,600 characters).
- WEBHOOK has no template: its text is the command record as JSON.

Escaping. HTML autoescaping is decided by the file name (``.html.j2`` on, everything else off), with
one twist: an email file holds both plain text and HTML, and Jinja decides escaping per compiled
template, not per block. So the HTML part of an email is rendered by an overlay of the environment
with autoescaping on, and its subject and text by the plain one: a product called
``<script>alert(1)</script>`` is escaped in the HTML and printed as it is in the plain text, where
escaping would only show ``&lt;`` to the reader. No template author has to remember anything.

The sandbox is the immutable one: a template cannot change the command it is given (the sender
still needs it after rendering).

What templates see: ``command`` (the whole record) and ``customer_id``, ``order_id``, ``journey``,
``step``, ``items``, ``total`` (formatted, or None), ``currency``, ``tracking_url``, ``carrier``,
``eta`` (formatted local date, or None), ``reason``, ``categories``, ``rating``, ``variables``,
``locale`` (as requested), ``language`` (of the file in use), ``timezone``, ``unsubscribe_url``
and ``digest``: empty, or for a digest message (a step with ``digest:``) every order it stands
for, its own first, each as ``{order_id, items}``. Filters: ``money(minor, currency)``,
``localdate(datetime)`` and ``listing`` (``a, b and c``), in the language of the file in use and
the recipient's time zone. Formatting knows ``en`` and ``de`` (:data:`CONVENTIONS`); other
languages are formatted the English way.

The shipped templates work with an empty context too (a parcel without a carrier, an order the
worker never saw) and use these optional journey ``variables`` when the journeys file sets them:
``payment_url``, ``tips_url``, ``help_url``, ``feedback_url``, ``review_url``, ``shop_url``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pipeline.journeys.model import Channel
from pipeline.jsonio import to_json

if TYPE_CHECKING:
    from pipeline.journeys.rules import JourneyBook

FILES = Path(__file__).resolve().parent / "files"
DEFAULT_UNSUBSCRIBE_URL = (
    "https://shop.example/preferences?customer={customer_id}&touchpoint={touchpoint_id}"
)
LAYOUT = "_layout.html.j2"
SMS_MAX_CHARS = 1600  # 10 concatenated segments: beyond it most carriers refuse or truncate

# The blocks each channel's file must define; None: the whole file is the text.
BLOCKS: Mapping[Channel, tuple[str, ...] | None] = {
    Channel.EMAIL: ("subject", "text", "html"),
    Channel.PUSH: ("title", "body"),
    Channel.IN_APP: ("title", "body"),
    Channel.SMS: None,
    Channel.WHATSAPP: None,
}

_LANGUAGE = re.compile(r"[a-z]{2,8}")


class TemplateError(ValueError):
    """A touchpoint cannot be rendered, or template files are broken.

    The message names the file (and line, when known), the channel, the locale and what went
    wrong; the attributes carry the same for code that records the failure.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        channel: str | None = None,
        locale: str | None = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.channel = channel
        self.locale = locale


@dataclass(frozen=True)
class Rendered:
    """One touchpoint in the words of one channel.

    ``subject``: the email subject, or the title of a push or in-app message (one line);
    ``text``: the plain-text body (email text part, SMS, WhatsApp, push, in-app, webhook JSON);
    ``html``: the email's HTML part, None for every other channel.
    """

    subject: str | None
    text: str
    html: str | None
    unsubscribe_url: str | None = None  # the link an email offered (its List-Unsubscribe too)


# -- formatting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conventions:
    """How one language writes amounts and dates."""

    decimal: str
    group: str
    currency_after: bool  # "49,99 €" rather than "€49.99"
    months: tuple[str, ...]
    date: str  # with {day}, {month}, {year}
    and_: str  # the last joint of a listing: "a, b and c"


# fmt: off
CONVENTIONS: Mapping[str, Conventions] = {
    "en": Conventions(
        decimal=".", group=",", currency_after=False, date="{day} {month} {year}", and_="and",
        months=("January", "February", "March", "April", "May", "June",
                "July", "August", "September", "October", "November", "December"),
    ),
    "de": Conventions(
        decimal=",", group=".", currency_after=True, date="{day}. {month} {year}", and_="und",
        months=("Januar", "Februar", "März", "April", "Mai", "Juni",
                "Juli", "August", "September", "Oktober", "November", "Dezember"),
    ),
}
# fmt: on

# Symbols written instead of the code. Everything else is written as its ISO 4217 code.
SYMBOLS: Mapping[str, str] = {"EUR": "€"}

# ISO 4217 minor-unit exponents other than 2.
# fmt: off
_EXPONENTS: Mapping[str, int] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}
# fmt: on


def format_money(minor: int, currency: str, language: str = "en") -> str:
    """``minor`` units of ``currency`` as ``language`` writes them: €1,234.50 / 1.234,50 €.

    The separator before a symbol or code is a plain space, not a no-break space: U+00A0 is not in
    the GSM-7 alphabet and would turn every SMS into UCS-2, with 70 instead of 160 characters per
    segment.
    """
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"money: the amount must be whole minor units (an int), not {minor!r}")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValueError(f"money: {currency!r} is not an ISO 4217 currency code such as EUR")
    conventions = CONVENTIONS.get(language, CONVENTIONS["en"])
    exponent = _EXPONENTS.get(currency, 2)
    units, fraction = divmod(abs(minor), 10**exponent)
    number = f"{units:,}".replace(",", conventions.group)
    if exponent:
        number += conventions.decimal + f"{fraction:0{exponent}d}"
    sign = "-" if minor < 0 else ""
    symbol = SYMBOLS.get(currency)
    if conventions.currency_after:
        return f"{sign}{number} {symbol or currency}"
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{currency} {sign}{number}"


def format_date(moment: datetime, zone: str | ZoneInfo, language: str = "en") -> str:
    """The calendar date of ``moment`` in ``zone`` as ``language`` writes it: 12 March 2026."""
    if not isinstance(moment, datetime):
        raise TypeError(f"localdate: expected a datetime, not {moment!r}")
    if moment.tzinfo is None:
        raise ValueError(
            f"localdate: {moment.isoformat()} has no time zone; pass an aware datetime"
        )
    local = moment.astimezone(zone if isinstance(zone, ZoneInfo) else _zone(zone))
    conventions = CONVENTIONS.get(language, CONVENTIONS["en"])
    return conventions.date.format(
        day=local.day, month=conventions.months[local.month - 1], year=local.year
    )


def format_listing(words: Iterable[object], language: str = "en") -> str:
    """Words as a sentence lists them: ``a``, ``a and b``, ``a, b and c`` (``und`` in German)."""
    texts = [str(word) for word in words]
    if len(texts) < 2:
        return "".join(texts)
    conventions = CONVENTIONS.get(language, CONVENTIONS["en"])
    return f"{', '.join(texts[:-1])} {conventions.and_} {texts[-1]}"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"the recipient's time zone {name!r} is not a known IANA time zone "
            "(like Europe/Berlin); fix it in the customer's preferences"
        ) from None


@jinja2.pass_context
def _money_filter(context: Context, minor: int, currency: str) -> str:
    return format_money(minor, currency, str(context.get("language", "en")))


@jinja2.pass_context
def _listing_filter(context: Context, words: Iterable[object]) -> str:
    return format_listing(words, str(context.get("language", "en")))


@jinja2.pass_context
def _localdate_filter(context: Context, moment: datetime) -> str:
    zone = str(context.get("timezone", "UTC"))
    return format_date(moment, zone, str(context.get("language", "en")))


# -- the renderer -------------------------------------------------------------------------------


class Renderer:
    """Renders touchpoint commands from the template files under ``directory``.

    ``default_locale`` is the language used when the recipient's has no file. Templates are offered
    ``unsubscribe_url``: ``unsubscribe_links(command)`` when given (the senders give the signed
    one-click link of :class:`pipeline.preferences.tokens.UnsubscribeLinks`), else
    ``unsubscribe_url`` formatted with ``customer_id`` and ``touchpoint_id`` (URL-quoted).
    Call :meth:`check` once at start to find broken files before any message needs them.
    """

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        default_locale: str = "en",
        unsubscribe_url: str = DEFAULT_UNSUBSCRIBE_URL,
        unsubscribe_links: Callable[[Mapping[str, Any]], str] | None = None,
    ) -> None:
        self.directory = Path(directory) if directory is not None else FILES
        if not self.directory.is_dir():
            raise TemplateError(
                f"template directory {self.directory} does not exist; "
                "point the renderer at a folder holding <language>/<template>.<channel>.j2 files",
                file=str(self.directory),
            )
        language = _language(default_locale)
        if language is None:
            raise ValueError(
                f"default_locale {default_locale!r} is not a language tag like 'en' or 'en-GB'"
            )
        self.default_language = language
        try:
            unsubscribe_url.format(customer_id="c", touchpoint_id="t")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"unsubscribe_url {unsubscribe_url!r} is not a template with {{customer_id}} and "
                f"{{touchpoint_id}}: {exc!r}"
            ) from None
        self.unsubscribe_url = unsubscribe_url
        self.unsubscribe_links = unsubscribe_links  # when given, it makes each command's link
        self._loader = jinja2.FileSystemLoader(self.directory)
        self._text = ImmutableSandboxedEnvironment(
            loader=self._loader,
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2",), default_for_string=False, default=False
            ),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._text.filters["money"] = _money_filter
        self._text.filters["localdate"] = _localdate_filter
        self._text.filters["listing"] = _listing_filter
        # The HTML part of an email file: same loader, filters and sandbox, everything escaped.
        self._html = self._text.overlay(autoescape=True)

    def render(
        self, command: Mapping[str, Any], channel: str, locale: str | None = None
    ) -> Rendered:
        """``command`` (a decoded TouchpointCommand) in the words of ``channel``.

        ``locale`` defaults to the recipient's. Raises :class:`TemplateError` for anything that
        stops the message: no file, a broken file, a name the template uses but the command does
        not provide, a sandbox violation, an SMS over 1,600 characters.
        """
        kind = _channel(channel)
        if kind is Channel.WEBHOOK:
            return _webhook(command)
        try:
            template_name = str(command["template"])
            requested = locale if locale is not None else str(command["recipient"]["locale"])
        except (KeyError, TypeError) as exc:
            raise TemplateError(
                f"cannot render for {kind}: the command lacks the template or the recipient's "
                f"locale ({exc!r}); it must be a decoded TouchpointCommand record",
                channel=kind.value,
                locale=locale,
            ) from None
        template, language = self._find(template_name, kind, requested)
        main = str(template.filename)
        try:
            values = self._values(command, requested, language)
            return self._render(template, kind, values)
        except TemplateError:
            raise
        except Exception as exc:  # whatever a template provokes fails this message, not the sender
            raise _failure(exc, main, kind, requested) from exc

    def check(self, journeys: JourneyBook | None = None) -> int:
        """Compile every template file and check it has what its channel needs; at start.

        With ``journeys``, also check that every step has a default-language file for each of its
        channels. Returns how many files were checked; raises one :class:`TemplateError` listing
        every problem, each as ``file:line: what``.
        """
        problems: list[str] = []
        paths = sorted(p for p in self.directory.rglob("*.j2") if p.is_file())
        for path in paths:
            name = path.relative_to(self.directory).as_posix()
            try:
                template = self._text.get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                problems.append(f"{exc.filename or path}:{exc.lineno}: {exc.message}")
                continue
            problems.extend(self._shape_problems(name, path, template))
        if journeys is not None:
            for journey in journeys.journeys:
                for step in journey.steps:
                    for channel in step.channels:
                        if channel is Channel.WEBHOOK:
                            continue
                        path = self.directory / self._name(
                            self.default_language, step.template, channel
                        )
                        if not path.is_file():
                            at = f":{step.line}" if step.line else ""
                            problems.append(
                                f"{journeys.source}{at}: journey {journey.name} step "
                                f"{step.name} sends template {step.template} on "
                                f"{channel.lower()}, but {path} is missing"
                            )
        if problems:
            raise TemplateError(
                f"{len(problems)} problem(s) in the templates under {self.directory}:\n"
                + "\n".join(f"  {problem}" for problem in problems),
                file=str(self.directory),
            )
        return len(paths)

    # -- inside -----------------------------------------------------------------------------

    @staticmethod
    def _name(language: str, template: str, channel: Channel) -> str:
        return f"{language}/{template}.{channel.value.lower()}.j2"

    def _find(
        self, template_name: str, kind: Channel, requested: str
    ) -> tuple[jinja2.Template, str]:
        if not template_name or "/" in template_name or "\\" in template_name:
            raise TemplateError(
                f"{template_name!r} is not a template name (like order_confirmation.confirm); "
                "fix the step's template in the journeys file",
                channel=kind.value,
                locale=requested,
            )
        wanted = _language(requested) or self.default_language
        tried: list[str] = []
        for language in dict.fromkeys((wanted, self.default_language)):
            name = self._name(language, template_name, kind)
            tried.append(str(self.directory / name))
            try:
                return self._text.get_template(name), language
            except jinja2.TemplateNotFound as exc:
                if exc.name != name:
                    raise _failure(exc, tried[-1], kind, requested) from exc
            except jinja2.TemplateSyntaxError as exc:
                raise _failure(exc, tried[-1], kind, requested) from exc
        raise TemplateError(
            f"{' and '.join(tried)}: no such file ({kind}, locale {requested}); add the template "
            f"for {template_name} on {kind}, at least in {self.default_language}/",
            file=tried[-1],
            channel=kind.value,
            locale=requested,
        )

    def _values(self, command: Mapping[str, Any], requested: str, language: str) -> dict[str, Any]:
        context: Mapping[str, Any] = command["context"]
        zone_name = str(command["recipient"].get("timezone") or "UTC")
        zone = _zone(zone_name)
        currency = context.get("currency")
        total_minor = context.get("total_minor")
        eta = context.get("eta")
        return {
            "command": command,
            "customer_id": command["customer_id"],
            "order_id": command.get("order_id"),
            "journey": command["journey"],
            "step": command["step"],
            "items": list(context.get("items") or ()),
            "total": (
                format_money(total_minor, currency, language)
                if total_minor is not None and currency
                else None
            ),
            "currency": currency,
            "tracking_url": context.get("tracking_url"),
            "carrier": context.get("carrier"),
            "eta": format_date(eta, zone, language) if eta is not None else None,
            "reason": context.get("reason"),
            "categories": list(context.get("categories") or ()),
            "rating": context.get("rating"),
            "variables": dict(context.get("variables") or {}),
            # A digest: this message's own order first, then every other it stands for.
            "digest": [
                {
                    "order_id": command.get("order_id"),
                    "items": list(context.get("items") or ()),
                },
                *(
                    {
                        "order_id": member.get("order_id"),
                        "items": list((member.get("context") or {}).get("items") or ()),
                    }
                    for member in command.get("digest") or ()
                ),
            ]
            if command.get("digest")
            else [],
            "locale": requested,
            "language": language,
            "timezone": zone_name,
            "unsubscribe_url": (
                self.unsubscribe_links(command)
                if self.unsubscribe_links is not None
                else self.unsubscribe_url.format(
                    customer_id=quote(str(command["customer_id"]), safe=""),
                    touchpoint_id=quote(str(command["touchpoint_id"]), safe=""),
                )
            ),
        }

    def _render(self, template: jinja2.Template, kind: Channel, values: dict[str, Any]) -> Rendered:
        if kind is Channel.EMAIL:
            subject = _one_line(_block(template, "subject", values))
            text = _block(template, "text", values)
            html = self._html.get_template(str(template.name)).render(values).strip()
            return Rendered(subject, text, html, values["unsubscribe_url"])
        if kind in (Channel.PUSH, Channel.IN_APP):
            title = _one_line(_block(template, "title", values))
            return Rendered(subject=title, text=_block(template, "body", values), html=None)
        text = template.render(values).strip()
        if kind is Channel.SMS and len(text) > SMS_MAX_CHARS:
            raise ValueError(
                f"the SMS is {len(text)} characters, more than the {SMS_MAX_CHARS:,} an SMS can "
                "carry; shorten the template (or what it prints of long data, like item lists)"
            )
        return Rendered(subject=None, text=text, html=None)

    def _shape_problems(self, name: str, path: Path, template: jinja2.Template) -> list[str]:
        base = name.rsplit("/", 1)[-1]
        if base.startswith("_"):
            return []  # a shared piece: layout, footer, macros
        if "/" not in name:
            return [f"{path}: not in a language folder; move it to <language>/{base}"]
        stem = base.removesuffix(".j2")
        suffix = stem.rsplit(".", 1)[-1] if "." in stem else ""
        kinds = {channel.value.lower(): channel for channel in BLOCKS}
        kind = kinds.get(suffix)
        if kind is None:
            return [
                f"{path}: {suffix!r} is not a channel; name files <template>.<channel>.j2 with "
                f"channel one of {', '.join(kinds)}"
            ]
        problems = [
            f"{path}: a {kind} template needs {{% block {block} %}}"
            for block in BLOCKS[kind] or ()
            if block not in template.blocks
        ]
        if kind is Channel.EMAIL:
            source, _, _ = self._loader.get_source(self._text, name)
            if self._text.parse(source).find(nodes.Extends) is None:
                problems.append(
                    f'{path}:1: an email template starts with {{% extends "{LAYOUT}" %}}, '
                    "which wraps its html block in the layout"
                )
        return problems


def _language(locale: str) -> str | None:
    """``de-DE`` -> ``de``; None for something that is not a language tag."""
    language = locale.replace("_", "-").split("-", 1)[0].strip().lower()
    return language if _LANGUAGE.fullmatch(language) else None


def _channel(channel: str) -> Channel:
    try:
        return Channel(str(channel).upper())
    except ValueError:
        raise TemplateError(
            f"{channel!r} is not a channel; one of {', '.join(c.value for c in Channel)}",
            channel=str(channel),
        ) from None


def _block(template: jinja2.Template, block: str, values: dict[str, Any]) -> str:
    render = template.blocks.get(block)
    if render is None:
        raise ValueError(f"the template has no {{% block {block} %}}; add it")
    return "".join(render(template.new_context(values))).strip()


def _one_line(text: str) -> str:
    # Subjects and titles become headers and notification titles: a line break from data must not
    # split (or inject) a header.
    return " ".join(text.split())


def _webhook(command: Mapping[str, Any]) -> Rendered:
    try:
        payload = json.dumps(to_json(command), ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TemplateError(
            f"cannot write the webhook payload as JSON: {exc}; the command must be a decoded "
            "TouchpointCommand record",
            channel=Channel.WEBHOOK.value,
        ) from None
    return Rendered(subject=None, text=payload, html=None)


def _failure(exc: BaseException, main: str, kind: Channel, locale: str) -> TemplateError:
    """The TemplateError for ``exc``, raised while rendering template file ``main``."""
    file, line = main, None
    if isinstance(exc, jinja2.TemplateSyntaxError):
        file, line = exc.filename or main, exc.lineno
        what = f"syntax error: {exc.message}; fix the template"
    else:
        # Jinja rewrites tracebacks so that template frames carry the template's file and line.
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.endswith(".j2"):
                file, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
            tb = tb.tb_next
        if isinstance(exc, SecurityError):
            what = (
                f"refused by the sandbox: {exc}; templates may use only the names and filters "
                "the renderer provides"
            )
        elif isinstance(exc, jinja2.UndefinedError):
            what = (
                f"{exc.message}; use only names the renderer provides, and test optional ones "
                "(`{% if carrier %}`, `variables.get('name')`)"
            )
        elif isinstance(exc, jinja2.TemplateNotFound):
            what = f"it uses {exc.name}, which does not exist; add it or fix the name"
        elif isinstance(exc, ValueError):  # ours (SMS length, money, time zone) say what to do
            what = str(exc)
        else:
            what = f"{type(exc).__name__}: {exc}"

    where = f"{file}:{line}" if line else file
    via = f", rendering {main}" if file != main else ""
    return TemplateError(
        f"{where} ({kind}, locale {locale}{via}): {what}",
        file=file,
        line=line,
        channel=kind.value,
        locale=locale,
    )
