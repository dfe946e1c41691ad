"""A partner's history in words (R11, R19): each audit entry as a sentence in the page's
language, naming who acted and whom it is about by name where the partner knows them
("Ada Lovelace aceitou o convite e agora é Admin do parceiro"), with what to do where
something went wrong (an undeliverable mail, an expired invitation)."""

from __future__ import annotations

from partners.texts import CATALOG, Locale
from partners.views import AuditEntry


def sentence(entry: AuditEntry, locale: Locale) -> str:
    words = CATALOG[locale]
    details = entry.details
    template = words.get(f"history_{entry.action}")
    who = _person(entry.actor, entry.actor_name, words)
    if template is None:  # an action the console has no words for yet: still said, plainly
        return f"{who}: {entry.action}"
    text = template.format(
        who=who,
        about=_person(entry.about, entry.about_name, words) if entry.about else words["history_someone"],
        role=words.get(f"role_{details.get('role')}", str(details.get("role", ""))),
        kind=words.get(f"kind_{details.get('kind')}", ""),
        ref=details.get("ref", ""),
        n=details.get("send_number", ""),
        previous=details.get("previous_admin", ""),
    )
    if entry.action == "partner_suspended" and (reason := details.get("reason")):
        text += " " + words["history_reason"].format(reason=reason)
    return text


def _person(address: str | None, name: str | None, words: dict[str, str]) -> str:
    if address == "system" or address is None:
        return words["history_system"]
    if address.startswith("operator:"):
        return words["history_operator"].format(name=address.removeprefix("operator:"))
    return name or address
