"""Members and access (R12 to R14, R16): the members, removal and leaving, what a person may
use, and a person's data for operators."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from partners.errors import ErrorCode, Refused
from partners.models import GrantKind
from partners.rules import normalize_email
from partners.views import Access, AccessCheck, MemberList, MembershipView
from starter.actors import Actor, ActorRole
from starter.service.base import Service
from store.memberships import EndReason


def _operator_asks(actor: Actor, email: str) -> str:
    if actor.role is not ActorRole.OPERATOR:
        raise Refused(ErrorCode.FORBIDDEN, "Only an operator exports or erases a person's data.")
    try:  # the stored form of every address (an IDN domain in punycode)
        return normalize_email(email).address
    except ValueError as err:
        raise Refused(ErrorCode.INVALID_INPUT, f"An e-mail address is expected: {err}") from None


class Members(Service):
    async def of_partner(self, actor: Actor, partner_id: UUID) -> MemberList:
        await self.authorize.seen_by(actor, partner_id)
        return MemberList(members=await self._stores.memberships.members(partner_id))

    async def remove(self, actor: Actor, partner_id: UUID, email: str) -> MembershipView:
        """R13: by the account holder or the partner's Admin."""
        await self.authorize.held_partner(actor, partner_id, or_admin=True)
        try:
            address = normalize_email(email).address
        except ValueError:
            raise Refused(ErrorCode.NOT_A_MEMBER, "This person is not an active member of the partner.") from None
        return await self._end(
            actor, partner_id, address, "removed", by_partner_admin=actor.role is ActorRole.PARTNER_USER
        )

    async def leave(self, actor: Actor, partner_id: UUID) -> MembershipView:
        """R13: a member ends their own membership; the Admin is replaced, never leaves."""
        _, viewer = await self.authorize.seen_by(actor, partner_id)
        if viewer not in ("admin", "member"):
            raise Refused(ErrorCode.FORBIDDEN, "Only a member of the partner may leave it.")
        return await self._end(actor, partner_id, actor.email, "left")

    async def _end(
        self, actor: Actor, partner_id: UUID, email: str, reason: EndReason, *, by_partner_admin: bool = False
    ) -> MembershipView:
        ended, cancelled = await self._stores.memberships.end(
            partner_id, email, actor=actor.email, reason=reason, by_partner_admin=by_partner_admin
        )
        await self._tell_closed(cancelled, f"membership {reason}")
        return ended

    # --- what a person may use (R14) -------------------------------------------------------

    async def access(self, actor: Actor, *, suspended_too: bool = False) -> Access:
        return await self._stores.access.access(actor.email, suspended_too=suspended_too)

    async def check(self, actor: Actor, enterprise_id: str, kind: GrantKind, ref: str) -> AccessCheck:
        return await self._stores.access.check(actor.email, enterprise_id, kind, ref)

    # --- a person's data (R16, LGPD art. 18): operators only ------------------------------

    async def export_person(self, actor: Actor, email: str) -> dict[str, Any]:
        return await self._stores.persons.export(_operator_asks(actor, email))

    async def erase_person(self, actor: Actor, email: str) -> dict[str, Any]:
        """Ends the memberships, cancels the pending invitations (their workflows are
        told), and puts one pseudonym in place of the name and address everywhere."""
        done, cancelled = await self._stores.persons.erase(_operator_asks(actor, email), actor.email)
        await self._tell_closed(cancelled, "person erased")
        return done
