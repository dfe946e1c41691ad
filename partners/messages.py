"""What mails and pages say, in Brazilian Portuguese (the default) and English.

One catalog for the mail activity and the invitation pages. Values are filled in with
`str.format`; in HTML the caller formats through markupsafe so that values are escaped.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from markupsafe import Markup, escape


class Locale(StrEnum):
    PT_BR = "pt-BR"
    EN = "en"


_EN = {
    "subject": "{enterprise} invites you to {partner}",
    "reminder": "Reminder: {subject}",
    "greeting": "Hello {first_name},",
    "intro": "{enterprise} invites you to join {partner} on its developer portal as {role}.",
    "note_admin": "As Admin you invite the people of {partner} and use the products granted to it.",
    "note_member": "As Member you use the products granted to {partner}.",
    "open_link": "Open this link to accept the invitation:",
    "button": "Review the invitation",
    "paste": "Or paste this link into your browser:",
    "valid_until": "The invitation is valid until {date}.",
    "ignore": "If you did not expect it, ignore this e-mail: nothing happens unless you accept.",
    "invited_by": "Invited by {inviter}.",
    "role_admin": "Admin",
    "role_member": "Member",
    "page_title": "Invitation to {partner}",
    "join": "Join {partner}",
    "accept": "Accept the invitation",
    "nothing_happens": "Nothing happens unless you accept.",
    "accept_in_portal": "Accept in the portal",
    "portal_note": "You accept it in the portal, signed in with the address this invitation was sent to.",
    "accepted_title": "Welcome to {partner}",
    "accepted_body": "You accepted the invitation of {enterprise}. You are now {role} of {partner}.",
    "accepted_next": "Next: sign in to the portal with this e-mail address. You will find the products"
    " {partner} may use there, and under Partners your partner account.",
    "go_to_portal": "Go to the portal",
    "already_accepted_title": "Already accepted",
    "already_accepted_body": "This invitation to {partner} was already accepted. There is nothing more to do.",
    "expired_title": "This invitation has expired",
    "expired_body": "Ask {enterprise} to send you a new invitation to {partner}.",
    "withdrawn_title": "This invitation was withdrawn",
    "withdrawn_body": "{enterprise} withdrew this invitation to {partner}. Nothing was changed.",
    "closed_title": "This invitation can no longer be accepted",
    "closed_body": "Ask {enterprise} for a new invitation to {partner}.",
    "deactivated_title": "{partner} is no longer a partner",
    "deactivated_body": "{enterprise} ended its partnership with {partner}. This invitation no longer applies.",
    "too_many_title": "Too many attempts",
    "too_many_body": "This browser opened too many invalid invitation links. Try again in a few minutes.",
    "invalid_title": "This link is not valid",
    "invalid_body": (
        "Check that you opened the whole link from the e-mail, or ask the person who invited you for a new invitation."
    ),
}

_PT_BR = {
    "subject": "{enterprise} convida você para {partner}",
    "reminder": "Lembrete: {subject}",
    "greeting": "Olá, {first_name},",
    "intro": "{enterprise} convida você a participar de {partner} no portal de desenvolvedores como {role}.",
    "note_admin": "Como Administrador(a), você convida as pessoas de {partner} e usa os produtos liberados a ela.",
    "note_member": "Como Membro, você usa os produtos liberados a {partner}.",
    "open_link": "Abra este link para aceitar o convite:",
    "button": "Ver o convite",
    "paste": "Ou cole este link no navegador:",
    "valid_until": "O convite vale até {date}.",
    "ignore": "Se você não esperava este convite, ignore este e-mail: nada acontece sem o seu aceite.",
    "invited_by": "Convite enviado por {inviter}.",
    "role_admin": "Administrador(a)",
    "role_member": "Membro",
    "page_title": "Convite para {partner}",
    "join": "Participe de {partner}",
    "accept": "Aceitar o convite",
    "nothing_happens": "Nada acontece sem o seu aceite.",
    "accept_in_portal": "Aceitar no portal",
    "portal_note": "O aceite é feito no portal, com login no endereço para o qual este convite foi enviado.",
    "accepted_title": "Boas-vindas a {partner}",
    "accepted_body": "Você aceitou o convite de {enterprise}. Agora você é {role} de {partner}.",
    "accepted_next": "Próximo passo: entre no portal com este e-mail. Lá você encontra os produtos que"
    " {partner} pode usar e, em Parceiros, a sua conta parceira.",
    "go_to_portal": "Ir para o portal",
    "already_accepted_title": "Convite já aceito",
    "already_accepted_body": "Este convite para {partner} já foi aceito. Não há mais nada a fazer.",
    "expired_title": "Este convite expirou",
    "expired_body": "Peça a {enterprise} um novo convite para {partner}.",
    "withdrawn_title": "Este convite foi retirado",
    "withdrawn_body": "{enterprise} retirou este convite para {partner}. Nada foi alterado.",
    "closed_title": "Este convite não pode mais ser aceito",
    "closed_body": "Peça a {enterprise} um novo convite para {partner}.",
    "deactivated_title": "{partner} não é mais parceira",
    "deactivated_body": "{enterprise} encerrou a parceria com {partner}. Este convite não vale mais.",
    "too_many_title": "Tentativas demais",
    "too_many_body": "Este navegador abriu links de convite inválidos demais. Tente de novo em alguns minutos.",
    "invalid_title": "Este link não é válido",
    "invalid_body": ("Confira se você abriu o link completo do e-mail, ou peça um novo convite a quem convidou você."),
}

CATALOG: dict[Locale, dict[str, str]] = {Locale.EN: _EN, Locale.PT_BR: _PT_BR}


def text(locale: Locale, key: str, **values: object) -> str:
    return CATALOG[locale][key].format(**values)


def when(moment: datetime, locale: Locale) -> str:
    """A date and time as people of the locale write it; always in UTC, and saying so."""
    pattern = "%d/%m/%Y %H:%M UTC" if locale is Locale.PT_BR else "%Y-%m-%d %H:%M UTC"
    return moment.strftime(pattern)


def html(locale: Locale, key: str, **values: object) -> Markup:
    """The catalog's text for HTML: every value escaped, unless it is markup itself."""
    # The catalog is our own text, escaped here; Markup.format escapes every value.
    return Markup(escape(CATALOG[locale][key])).format(**values)  # noqa: S704


def strong(value: str) -> Markup:
    return Markup("<strong>{}</strong>").format(value)
