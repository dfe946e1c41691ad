"""R15: which event each audited change is, and what the event may carry.

`data` carries ids and states; addresses only where the portal needs to know who
(the member who joined or left, the new and old Admin); never a token, never a name.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class AuditAction(StrEnum):
    """Every change the audit log records (R11). One the portal hears (R15) carries its
    event type and the audit details its event may carry, as `ErrorCode` carries its
    HTTP status: a typo is a type error, not an event silently never sent."""

    event_type: str | None
    carries: tuple[str, ...]

    def __new__(cls, value: str, event_type: str | None = None, carries: tuple[str, ...] = ()) -> AuditAction:
        member = str.__new__(cls, value)
        member._value_ = value
        member.event_type = event_type
        member.carries = carries
        return member

    PARTNER_REGISTERED = ("partner_registered", "partner.registered", ("invitation_id",))
    PARTNER_ACTIVATED = ("partner_activated", "partner.activated")
    PARTNER_DEACTIVATED = ("partner_deactivated", "partner.deactivated", ("cancelled_invitations",))
    PARTNER_SUSPENDED = ("partner_suspended", "partner.suspended", ("reason",))
    PARTNER_RESUMED = ("partner_resumed", "partner.resumed", ("status",))
    LOGO_SET = ("logo_set", "partner.logo_updated", ("content_type", "size"))
    INVITATION_CREATED = ("invitation_created", "invitation.created", ("invitation_id", "role", "purpose"))
    INVITATION_REVIVED = ("invitation_revived", "invitation.revived", ("invitation_id", "was"))
    INVITATION_SENT = ("invitation_sent", "invitation.sent", ("invitation_id", "send_number"))
    INVITATION_RESENT = ("invitation_resent", "invitation.resent", ("invitation_id", "send_number"))
    INVITATION_ACCEPTED = ("invitation_accepted", "invitation.accepted", ("invitation_id", "role"))
    INVITATION_EXPIRED = ("invitation_expired", "invitation.expired", ("invitation_id",))
    INVITATION_CANCELLED = ("invitation_cancelled", "invitation.cancelled", ("invitation_id",))
    INVITATION_SUPERSEDED = ("invitation_superseded", "invitation.superseded", ("invitation_id", "by"))
    INVITATION_UNDELIVERABLE = ("invitation_undeliverable", "invitation.undeliverable", ("invitation_id",))
    MEMBER_ADDED = ("member_added", "member.added", ("email", "role"))
    MEMBER_REMOVED = ("member_removed", "member.removed", ("email", "reason", "cancelled_invitations"))
    MEMBER_LEFT = ("member_left", "member.removed", ("email", "reason", "cancelled_invitations"))
    ADMIN_REPLACED = ("admin_replaced", "admin.replaced", ("previous_admin", "new_admin", "invitation_id"))
    GRANT = ("grant", "grant.created", ("grant_id", "kind", "ref"))
    REVOKE = ("revoke", "grant.revoked", ("grant_id", "kind", "ref"))
    # Audited, not pushed: the endpoints' administration and a person's erasure.
    WEBHOOK_CREATED = ("webhook_created",)
    WEBHOOK_DELETED = ("webhook_deleted",)
    WEBHOOK_SECRET_ROTATED = ("webhook_secret_rotated",)
    WEBHOOK_DISABLED = ("webhook_disabled",)
    PERSON_ERASED = ("person_erased",)
    ADDRESS_SUPPRESSED = ("address_suppressed",)
    SUPPRESSION_LIFTED = ("suppression_lifted",)
    RECONCILED = ("reconciled",)  # a repair of `partners reconcile` (R25)

    @classmethod
    def closing(cls, state: str) -> AuditAction:
        """The action that records an invitation closed in `state` (expired, cancelled...)."""
        return cls(f"invitation_{state}")


EVENT_TYPES: frozenset[str] = frozenset(a.event_type for a in AuditAction if a.event_type is not None)


def event_of(action: AuditAction, details: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The event type and data of an audited change; None for an action that is not one
    (webhook administration, say, which is audited but not pushed)."""
    if action.event_type is None:
        return None
    data = {key: details[key] for key in action.carries if key in details}
    if action.startswith("invitation_"):
        what = action.removeprefix("invitation_")
        data["state"] = "pending" if what in _STILL_PENDING else what  # accepted, expired, ...
    return action.event_type, data


_STILL_PENDING = frozenset({"created", "revived", "sent", "resent"})
