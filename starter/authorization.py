"""Who an actor is to a partner or an invitation, and what that lets them do (R1, R5,
R12): the one place every route, page and the CLI ask. Decided by one indexed query
(`ReadModel.standing`), never by reading what is shown."""

from __future__ import annotations

from uuid import UUID

from partners.errors import ErrorCode, Refused
from partners.models import InvitationPurpose, Role
from partners.views import InvitationDetail, PartnerSummary, Viewer
from starter.actors import Actor, ActorRole
from store.reads import ReadModel


class Authorization:
    def __init__(self, reads: ReadModel) -> None:
        self._reads = reads

    async def seen_by(self, actor: Actor, partner_id: UUID) -> tuple[PartnerSummary, Viewer]:
        """The partner and who the actor is to it, in one indexed query. R12: anyone who
        is neither an account holder of its enterprise nor an active member gets what a
        missing partner gets."""
        email = actor.email if actor.role is ActorRole.PARTNER_USER else None
        standing = await self._reads.standing(partner_id, email)
        if standing is None:
            raise Refused(ErrorCode.NOT_FOUND, "No such partner.")
        partner, role = standing
        if actor.holds(partner.enterprise_id):
            return partner, "operator" if actor.role is ActorRole.OPERATOR else "account_holder"
        if role is not None:
            return partner, "admin" if role is Role.ADMIN else "member"
        raise Refused(ErrorCode.NOT_FOUND, "No such partner.")

    async def held_partner(self, actor: Actor, partner_id: UUID, *, or_admin: bool = False) -> PartnerSummary:
        """R1: the partner, for an account holder of its enterprise (or the CLI's operator),
        and with `or_admin` for its Admin too; 403 for its members, 404 for anyone else."""
        partner, viewer = await self.seen_by(actor, partner_id)
        if viewer == "member" or (viewer == "admin" and not or_admin):
            allowed = "an account holder of its enterprise" + (" or its Admin" if or_admin else "")
            raise Refused(ErrorCode.FORBIDDEN, f"Only {allowed} may do this.")
        return partner

    async def inviting_partner(self, actor: Actor, partner_id: UUID) -> PartnerSummary:
        """R5: the partner, when the actor is its Admin (a batch asks once)."""
        partner, viewer = await self.seen_by(actor, partner_id)
        if viewer != "admin":
            raise Refused(ErrorCode.FORBIDDEN, "Only the partner's Admin invites its members.")
        return partner

    async def invitation(self, actor: Actor, invitation_id: UUID) -> InvitationDetail:
        """The account holder of the partner's enterprise; for member invitations also its
        Admin. Its members get 403, anyone else what a missing invitation gets."""
        detail = await self._reads.get_invitation(invitation_id)
        if detail is None:
            raise Refused(ErrorCode.NOT_FOUND, "No such invitation.")
        try:
            _, viewer = await self.seen_by(actor, detail.partner_id)
        except Refused as err:
            if err.code is ErrorCode.NOT_FOUND:
                raise Refused(ErrorCode.NOT_FOUND, "No such invitation.") from None
            raise
        if viewer == "member" or (viewer == "admin" and detail.purpose is not InvitationPurpose.MEMBER):
            raise Refused(ErrorCode.FORBIDDEN, "Only an account holder of the enterprise may do this.")
        return detail
