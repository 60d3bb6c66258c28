"""What each touchpoint says, on each channel, in each language.

The journey core decides *that* a customer hears from the shop and when; this package decides the
words. A touchpoint command names a template (``order_confirmation.confirm`` unless the journeys
file says otherwise); the sender asks the :class:`Renderer` for that template on the channel it is
about to use, in the recipient's language, and gets a :class:`Rendered`: a subject or title, a
plain text, and for email an HTML part.

Why templates are files and not code: wording changes more often than logic, and the people who
change it are rarely the people who deploy the worker. So the files live under ``files/`` (or a
folder of the operator's own), one per template, channel and language; they run in Jinja2's
sandbox, every name they use must exist, and anything that goes wrong is a :class:`TemplateError`
naming the file, the line, the channel and the locale. The sender records it as a FAILED outcome;
:meth:`Renderer.check` finds the same problems at start, for every file at once.

Why the renderer formats money and dates itself: a message shows ``49,99 €`` and ``12. März 2026``
to a German customer and ``€49.99`` and ``12 March 2026`` to an English one, in the customer's
time zone; two languages do not justify a locale database, and adding one is a table entry
(:data:`~pipeline.templates.render.CONVENTIONS`).

See :mod:`pipeline.templates.render` for the file layout, what each channel's file holds and the
names templates can use.
"""

from pipeline.templates.render import (
    DEFAULT_UNSUBSCRIBE_URL,
    SMS_MAX_CHARS,
    Rendered,
    Renderer,
    TemplateError,
    format_date,
    format_listing,
    format_money,
)

__all__ = [
    "DEFAULT_UNSUBSCRIBE_URL",
    "SMS_MAX_CHARS",
    "Rendered",
    "Renderer",
    "TemplateError",
    "format_date",
    "format_listing",
    "format_money",
]
