"""Admission (R5 to R8): every check an invitation passes when it is created or revived,
under its partner's row lock, and the admin invitations a newer one supersedes."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from partners.errors import ErrorCode, Refused
from partners.events import AuditAction
from partners.models import InvitationPurpose, InvitationWorkflowRef, PartnerStatus, Role
from store.mail_feedback import refuse_if_suppressed
from store.sql import (
    Db,
    active_role,
    audit,
    close_pending_invitations,
    is_active_admin,
    partner_domains,
    refuse_if_suspended,
    require_active,
    require_registered_domain,
)


async def admit(
    db: Db,
    partner: asyncpg.Record,
    partner_id: UUID,
    invitation_id: UUID,
    email: str,
    role: Role,
    *,
    actor: str,
    inviting_member: bool = False,
) -> tuple[InvitationPurpose, list[InvitationWorkflowRef]]:
    """Every check an invitation passes when it is created or revived, under the
    partner's row lock (R5-R8); answers its purpose and the admin invitations it
    supersedes (their links stop in this transaction)."""
    refuse_if_suspended(partner["status"])
    if role is Role.ADMIN:
        # For a pending partner, the first admin's invitation is re-targeted: the new one
        # activates the partner on acceptance (R4); for an active one, a replacement (R8).
        pending_partner = partner["status"] == PartnerStatus.PENDING
        purpose = InvitationPurpose.FIRST_ADMIN if pending_partner else InvitationPurpose.ADMIN_REPLACEMENT
    else:
        require_active(partner["status"])
        purpose = InvitationPurpose.MEMBER
    if inviting_member and not await is_active_admin(db, partner_id, actor):
        raise Refused(ErrorCode.FORBIDDEN, "Only the partner's Admin invites its members.")
    require_registered_domain(email, await partner_domains(db, partner_id))
    await refuse_if_suppressed(db, email)
    current = await active_role(db, partner_id, email)
    if role is Role.ADMIN and current is Role.ADMIN:
        raise Refused(ErrorCode.ALREADY_ADMIN, "This person is already the partner's Admin.")
    if role is Role.MEMBER and current is not None:
        raise Refused(ErrorCode.ALREADY_MEMBER, "This person is already a member of the partner.")
    # Before any superseding: a replacement naming the person its pending admin invitation
    # already names is refused like a repeated member invitation (resend that one instead),
    # so repeating a replacement cannot mail someone again and again.
    pending = await db.fetchval(
        "SELECT id FROM invitations WHERE partner_id = $1 AND email = $2 AND state = 'pending' AND id <> $3",
        partner_id,
        email,
        invitation_id,
    )
    if pending is not None:
        raise Refused(
            ErrorCode.ALREADY_INVITED, "A pending invitation exists for this address.", invitation_id=str(pending)
        )
    superseded: list[InvitationWorkflowRef] = []
    if role is Role.ADMIN:
        # R8: at most one live admin invitation; the newest request wins.
        superseded = await close_pending_invitations(db, partner_id, "superseded", admin_only=True, keep=invitation_id)
        for old in superseded:
            await audit(
                db,
                partner["enterprise_id"],
                partner_id,
                actor,
                AuditAction.INVITATION_SUPERSEDED,
                invitation_id=str(old.invitation_id),
                by=str(invitation_id),
            )
    return purpose, superseded
