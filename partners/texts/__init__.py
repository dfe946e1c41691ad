"""What the service says to people, in Brazilian Portuguese (the default) and English: one
catalogue for the mails, the invitation pages and the console, with one way to escape,
one way to write a date and one name for each role.

Values are filled in with `str.format`; in HTML through `html` (or a template's `t`),
which escapes every value that is not markup itself. A refusal's text is `err_<code>`
where the catalogue has one, else the refusal's own detail.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

from markupsafe import Markup, escape

from partners.texts import en, pt_br


class Locale(StrEnum):
    PT_BR = "pt-BR"
    EN = "en"


CATALOG: dict[Locale, dict[str, str]] = {Locale.PT_BR: pt_br.WORDS, Locale.EN: en.WORDS}


def text(locale: Locale, key: str, **values: object) -> str:
    """The catalogue's text as plain text (a mail's text part, a subject)."""
    return CATALOG[locale][key].format(**values)


def html(locale: Locale, key: str, **values: object) -> Markup:
    """The catalogue's text for HTML: every value escaped, unless it is markup itself."""
    # The catalogue is our own text, escaped here; Markup.format escapes every value.
    return Markup(escape(CATALOG[locale][key])).format(**values)  # noqa: S704


def translator(locale: Locale) -> Callable[..., Markup]:
    """`t(key, **values)` for a template of that locale."""

    def t(key: str, **values: object) -> Markup:
        return html(locale, key, **values)

    return t


def when(moment: datetime | None, locale: Locale) -> str:
    """A date and time as people of the locale write it; always in UTC, and saying so."""
    if moment is None:
        return ""
    return moment.strftime("%d/%m/%Y %H:%M UTC" if locale is Locale.PT_BR else "%Y-%m-%d %H:%M UTC")


def strong(value: str) -> Markup:
    return Markup("<strong>{}</strong>").format(value)


def refusal_text(locale: Locale, code: str, detail: str) -> str:
    """What a person reads for a refusal: its own words where the catalogue has them."""
    words = CATALOG[locale]
    if code.startswith("invitation_"):
        return words["err_invitation_closed"]
    return words.get(f"err_{code}", detail)
