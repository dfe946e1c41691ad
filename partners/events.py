"""R15: which event each audited change is, and what the event may carry.

`data` carries ids and states; addresses only where the portal needs to know who
(the member who joined or left, the new and old Admin); never a token, never a name.
"""

from __future__ import annotations

from typing import Any

# audit action -> (event type, the audit details the event carries)
_EVENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "partner_registered": ("partner.registered", ("invitation_id",)),
    "partner_activated": ("partner.activated", ()),
    "partner_deactivated": ("partner.deactivated", ("cancelled_invitations",)),
    "logo_set": ("partner.logo_updated", ("content_type", "size")),
    "invitation_created": ("invitation.created", ("invitation_id", "role", "purpose")),
    "invitation_revived": ("invitation.revived", ("invitation_id", "was")),
    "invitation_sent": ("invitation.sent", ("invitation_id", "send_number")),
    "invitation_resent": ("invitation.resent", ("invitation_id", "send_number")),
    "invitation_accepted": ("invitation.accepted", ("invitation_id", "role")),
    "invitation_expired": ("invitation.expired", ("invitation_id",)),
    "invitation_cancelled": ("invitation.cancelled", ("invitation_id",)),
    "invitation_superseded": ("invitation.superseded", ("invitation_id", "by")),
    "invitation_undeliverable": ("invitation.undeliverable", ("invitation_id",)),
    "member_added": ("member.added", ("email", "role")),
    "member_removed": ("member.removed", ("email", "reason", "cancelled_invitations")),
    "member_left": ("member.removed", ("email", "reason", "cancelled_invitations")),
    "admin_replaced": ("admin.replaced", ("previous_admin", "new_admin", "invitation_id")),
    "grant": ("grant.created", ("grant_id", "kind", "ref")),
    "revoke": ("grant.revoked", ("grant_id", "kind", "ref")),
}

EVENT_TYPES: frozenset[str] = frozenset(event for event, _ in _EVENTS.values())


def event_of(action: str, details: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The event type and data of an audited change; None for an action that is not one
    (webhook administration, say, which is audited but not pushed)."""
    found = _EVENTS.get(action)
    if found is None:
        return None
    event_type, keys = found
    data = {key: details[key] for key in keys if key in details}
    if action.startswith("invitation_"):
        what = action.removeprefix("invitation_")
        data["state"] = "pending" if what in _STILL_PENDING else what  # accepted, expired, ...
    return event_type, data


_STILL_PENDING = frozenset({"created", "revived", "sent", "resent"})
