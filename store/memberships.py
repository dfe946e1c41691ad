"""MembershipStore: who belongs to a partner (R12, R13), and ending a membership.

Ending one is the API's direct write under the partner's row lock (the lock deactivation
and every invitation take): the membership is kept, ended, and every pending invitation
of that person to that partner is cancelled in the same transaction, so their links stop
at once. The workflows that run them are told afterwards by the caller.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

import asyncpg

from partners.errors import ErrorCode, Refused
from partners.events import AuditAction
from partners.models import InvitationWorkflowRef, Role
from partners.views import MEMBERSHIP_COLUMNS, MembershipView, MemberView
from store.sql import Db, active_role, audit, close_pending_invitations, lock_partner

EndReason = Literal["removed", "left", "erased"]


class MembershipStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def active_role(self, partner_id: UUID, email: str) -> Role | None:
        return await active_role(self._pool, partner_id, email)

    async def members(self, partner_id: UUID) -> list[MemberView]:
        return await active_members(self._pool, partner_id)

    async def end(
        self, partner_id: UUID, email: str, *, actor: str, reason: EndReason, by_partner_admin: bool = False
    ) -> tuple[MembershipView, list[InvitationWorkflowRef]]:
        """Ends the active membership; answers it and the invitations it cancelled. The
        Admin is never removed (R5): replace them first. Who the next Admin is belongs to
        the account holder (R8): the partner's Admin (`by_partner_admin`) does not remove
        a Member the account holder named in a pending admin replacement (R13)."""
        async with self._pool.acquire() as db, db.transaction():
            partner = await lock_partner(db, partner_id)
            role = await active_role(db, partner_id, email)
            if role is None:
                raise Refused(ErrorCode.NOT_A_MEMBER, "This person is not an active member of the partner.")
            if role is Role.ADMIN:
                raise Refused(
                    ErrorCode.CANNOT_REMOVE_ADMIN,
                    "The Admin cannot be removed or leave: replace them first (POST /v1/partners/{id}/admin).",
                )
            if by_partner_admin and await db.fetchval(
                "SELECT 1 FROM invitations WHERE partner_id = $1 AND email = $2 AND state = 'pending'"
                " AND role = 'admin'",
                partner_id,
                email,
            ):
                raise Refused(
                    ErrorCode.SUCCESSOR_PENDING,
                    "The account holder named this person as the partner's next Admin; only the account holder"
                    " may remove them while that invitation is pending.",
                )
            return await end_membership(db, partner["enterprise_id"], partner_id, email, actor=actor, reason=reason)


async def end_membership(
    db: Db, enterprise_id: str, partner_id: UUID, email: str, *, actor: str, reason: EndReason
) -> tuple[MembershipView, list[InvitationWorkflowRef]]:
    """R13 inside the caller's transaction, the partner's row locked and the membership
    checked: ends it, cancels that person's pending invitations to the partner, audits."""
    row = await db.fetchrow(
        f"UPDATE members SET active = false, ended_at = now(), ended_by = $3, end_reason = $4"  # noqa: S608
        f" WHERE partner_id = $1 AND email = $2 AND active RETURNING {MEMBERSHIP_COLUMNS}",
        partner_id,
        email,
        actor,
        reason,
    )
    assert row is not None
    cancelled = await close_pending_invitations(db, partner_id, "cancelled", email=email, reason=f"membership {reason}")
    await audit(
        db,
        enterprise_id,
        partner_id,
        actor,
        AuditAction.MEMBER_LEFT if reason == "left" else AuditAction.MEMBER_REMOVED,
        email=email,
        reason=reason,
        cancelled_invitations=[str(c.invitation_id) for c in cancelled],
    )
    return MembershipView(**dict(row)), cancelled


def active_members_of(partner: str, *, as_rows: bool = False) -> str:
    """The query of a partner's active members, the Admin first, then by when they
    joined; `partner`: the SQL expression of its id; `as_rows`: each member one ROW(),
    in MemberView's field order, for an array of them."""
    columns = ", ".join(MemberView.model_fields)
    return (
        f"SELECT {f'ROW({columns})' if as_rows else columns} FROM members"  # noqa: S608 (constants)
        f" WHERE partner_id = {partner} AND active ORDER BY role = 'admin' DESC, joined_at, email"
    )


async def active_members(db: Db | asyncpg.Pool, partner_id: UUID) -> list[MemberView]:
    rows = await db.fetch(active_members_of("$1"), partner_id)
    return [MemberView(**dict(r)) for r in rows]
