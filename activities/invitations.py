"""InvitationStore: the invitation aggregate's writes, each one transaction.

Every check an invitation must pass (R5 to R8) is made here, under the partner's row
lock, whichever path created or revived it.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from activities.metrics import count
from activities.sql import (
    audit,
    is_active_admin,
    lock_partner,
    partner_domains,
    refuse_if_deactivated,
    require_active,
    require_registered_domain,
)
from partners.errors import ErrorCode, Refused
from partners.ids import invitation_workflow_id
from partners.messages import Locale
from partners.models import (
    AcceptInvitationInput,
    AcceptInvitationOutput,
    CloseInvitationInput,
    CloseInvitationOutput,
    CreateInvitationInput,
    CreateInvitationOutput,
    InvitationPurpose,
    InvitationState,
    PartnerStatus,
    ReopenInvitationInput,
    ReopenInvitationOutput,
    Role,
    RunningInvitation,
)


class InvitationStore:
    def __init__(self, pool: asyncpg.Pool, *, default_locale: Locale) -> None:
        self._pool = pool
        self._default_locale = default_locale

    @activity.defn
    async def create_invitation(self, input: CreateInvitationInput) -> CreateInvitationOutput:
        """R5, R6, R7 and R8 for an invitation of a partner that exists: one transaction."""
        new = input.invitation
        async with self._pool.acquire() as db, db.transaction():
            # The partner row lock serialises invitations of one partner.
            partner = await lock_partner(db, new.partner_id)
            existing = await db.fetchval("SELECT purpose FROM invitations WHERE id = $1", input.invitation_id)
            if existing is not None:  # a retry after the commit
                return CreateInvitationOutput(
                    enterprise_id=partner["enterprise_id"], purpose=InvitationPurpose(existing)
                )
            purpose = new.purpose
            if new.role is Role.ADMIN:
                # R8 for an active partner; for a pending one, the first admin's invitation
                # is re-targeted: the new one activates the partner on acceptance (R4).
                pending_partner = partner["status"] == PartnerStatus.PENDING
                purpose = InvitationPurpose.FIRST_ADMIN if pending_partner else InvitationPurpose.ADMIN_REPLACEMENT
            else:
                require_active(partner["status"])
            if new.purpose is InvitationPurpose.MEMBER and not await is_active_admin(
                db, new.partner_id, new.invited_by
            ):
                raise Refused(ErrorCode.FORBIDDEN, "Only the partner's Admin invites its members.")
            require_registered_domain(new.invitee.email, await partner_domains(db, new.partner_id))
            if new.role is Role.ADMIN and await is_active_admin(db, new.partner_id, new.invitee.email):
                raise Refused(ErrorCode.ALREADY_ADMIN, "This person is already the partner's Admin.")
            if new.role is Role.MEMBER and await db.fetchval(
                "SELECT 1 FROM members WHERE partner_id = $1 AND email = $2 AND active",
                new.partner_id,
                new.invitee.email,
            ):
                raise Refused(ErrorCode.ALREADY_MEMBER, "This person is already a member of the partner.")
            superseded: list[RunningInvitation] = []
            if new.role is Role.ADMIN:
                # R8: a newer admin invitation supersedes a pending one; its links stop now.
                superseded = [
                    RunningInvitation(invitation_id=r["id"], workflow_id=r["workflow_id"])
                    for r in await db.fetch(
                        "UPDATE invitations SET state = 'superseded', closed_at = now(), next_send_at = NULL"
                        " WHERE partner_id = $1 AND role = 'admin' AND state = 'pending' RETURNING id, workflow_id",
                        new.partner_id,
                    )
                ]
                for old in superseded:
                    await audit(
                        db,
                        partner["enterprise_id"],
                        new.partner_id,
                        new.invited_by,
                        "invitation_superseded",
                        invitation_id=str(old.invitation_id),
                        by=str(input.invitation_id),
                    )
            pending = await db.fetchval(
                "SELECT id FROM invitations WHERE partner_id = $1 AND email = $2 AND state = 'pending'",
                new.partner_id,
                new.invitee.email,
            )
            if pending is not None:
                raise Refused(
                    ErrorCode.ALREADY_INVITED,
                    "A pending invitation exists for this address.",
                    invitation_id=str(pending),
                )
            await db.execute(
                "INSERT INTO invitations (id, partner_id, email, first_name, last_name, role,"
                " purpose, state, max_sends, invited_by, locale, workflow_id)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10, $11)",
                input.invitation_id,
                new.partner_id,
                new.invitee.email,
                new.invitee.first_name,
                new.invitee.last_name,
                new.role.value,
                purpose.value,
                input.max_sends,
                new.invited_by,
                new.locale or partner["locale"] or self._default_locale,
                invitation_workflow_id(input.invitation_id),
            )
            await audit(
                db,
                partner["enterprise_id"],
                new.partner_id,
                new.invited_by,
                "invitation_created",
                invitation_id=str(input.invitation_id),
                email=new.invitee.email,
                role=new.role.value,
                purpose=purpose.value,
            )
        return CreateInvitationOutput(enterprise_id=partner["enterprise_id"], purpose=purpose, superseded=superseded)

    @activity.defn
    async def reopen_invitation(self, input: ReopenInvitationInput) -> ReopenInvitationOutput:
        """A run takes the invitation over (its workflow is gone): adopts it while pending,
        revives it when expired and asked to; any other state is refused with its code."""
        async with self._pool.acquire() as db, db.transaction():
            row = await db.fetchrow(
                "SELECT i.state, i.sends, i.email, i.expires_at, i.partner_id, p.enterprise_id, p.status"
                " FROM invitations i JOIN partners p ON p.id = i.partner_id"
                " WHERE i.id = $1 FOR UPDATE OF i, p",
                input.invitation_id,
            )
            if row is None:
                raise Refused(ErrorCode.NOT_FOUND, "No such invitation.")
            refuse_if_deactivated(row["status"])
            state = InvitationState(row["state"])
            if state is InvitationState.PENDING:
                await db.execute(
                    "UPDATE invitations SET workflow_id = $2 WHERE id = $1", input.invitation_id, input.workflow_id
                )
                return ReopenInvitationOutput(sends=row["sends"], revived=False, expires_at=row["expires_at"])
            if not (state is InvitationState.EXPIRED and input.take_over.revive):
                raise Refused(ErrorCode.closed_invitation(state.value), f"The invitation is {state.value}.")
            if await db.fetchval(
                "SELECT 1 FROM invitations WHERE partner_id = $1 AND email = $2 AND state = 'pending'",
                row["partner_id"],
                row["email"],
            ):
                raise Refused(ErrorCode.ALREADY_INVITED, "A newer invitation for this address is pending.")
            await db.execute(
                "UPDATE invitations SET state = 'pending', closed_at = NULL, last_error = NULL, workflow_id = $2"
                " WHERE id = $1",
                input.invitation_id,
                input.workflow_id,
            )
            await audit(
                db,
                row["enterprise_id"],
                row["partner_id"],
                input.take_over.actor,
                "invitation_revived",
                invitation_id=str(input.invitation_id),
                sends=row["sends"],
            )
        return ReopenInvitationOutput(sends=row["sends"], revived=True)

    @activity.defn
    async def accept_invitation(self, input: AcceptInvitationInput) -> AcceptInvitationOutput:
        """Acceptance and its effect in one transaction: the partner is never half-onboarded."""
        async with self._pool.acquire() as db, db.transaction():
            row = await db.fetchrow(
                "SELECT i.partner_id, i.email, i.first_name, i.last_name, i.role, i.purpose,"
                " i.state, p.enterprise_id, p.status AS partner_status"
                " FROM invitations i JOIN partners p ON p.id = i.partner_id"
                " WHERE i.id = $1 FOR UPDATE OF i, p",
                input.invitation_id,
            )
            if row is None:
                raise Refused(ErrorCode.NOT_FOUND, "No such invitation.")
            partner_status = PartnerStatus(row["partner_status"])
            if row["state"] != InvitationState.PENDING:
                # Already decided, by this activity's earlier attempt or by another path.
                return AcceptInvitationOutput(state=InvitationState(row["state"]), partner_status=partner_status)
            previous_admin = None
            if row["role"] == Role.ADMIN:
                # R8: in this one transaction the old Admin becomes Member, the new one Admin;
                # demoted first, so the partner never has two Admins (unique index), nor none.
                previous_admin = await db.fetchval(
                    "UPDATE members SET role = 'member' WHERE partner_id = $1 AND role = 'admin' AND active"
                    " AND email <> $2 RETURNING email",
                    row["partner_id"],
                    row["email"],
                )
            await db.execute(
                "INSERT INTO members (partner_id, email, first_name, last_name, role)"
                " VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (partner_id, email) DO UPDATE"
                " SET role = EXCLUDED.role, active = true, joined_at = now()",
                row["partner_id"],
                row["email"],
                row["first_name"],
                row["last_name"],
                row["role"],
            )
            if row["role"] == Role.ADMIN and partner_status is PartnerStatus.PENDING:
                await db.execute(
                    "UPDATE partners SET status = 'active', activated_at = now() WHERE id = $1", row["partner_id"]
                )
                partner_status = PartnerStatus.ACTIVE
            await db.execute(
                "UPDATE invitations SET state = 'accepted', closed_at = now(), next_send_at = NULL WHERE id = $1",
                input.invitation_id,
            )
            who = (db, row["enterprise_id"], row["partner_id"], row["email"])
            await audit(
                *who,
                "invitation_accepted",
                invitation_id=str(input.invitation_id),
                role=row["role"],
                send_number=input.send_number,
            )
            if partner_status is not PartnerStatus(row["partner_status"]):
                await audit(*who, "partner_activated")
            if previous_admin is not None:
                await audit(
                    *who,
                    "admin_replaced",
                    previous_admin=previous_admin,
                    new_admin=row["email"],
                    invitation_id=str(input.invitation_id),
                )
        activity.logger.info(
            "invitation accepted", extra={"invitation_id": input.invitation_id, "partner_id": row["partner_id"]}
        )
        count("partners_invitations_accepted", "Invitations accepted.", purpose=row["purpose"])
        return AcceptInvitationOutput(state=InvitationState.ACCEPTED, partner_status=partner_status)

    @activity.defn
    async def close_invitation(self, input: CloseInvitationInput) -> CloseInvitationOutput:
        """Only a pending invitation closes: an acceptance that committed first stands."""
        async with self._pool.acquire() as db, db.transaction():
            row = await db.fetchrow(
                "UPDATE invitations i SET state = $2, closed_at = now(), next_send_at = NULL,"
                " last_error = coalesce($3, i.last_error)"
                " FROM partners p WHERE i.id = $1 AND p.id = i.partner_id AND i.state = 'pending'"
                " RETURNING p.enterprise_id, i.partner_id, i.sends",
                input.invitation_id,
                input.state.value,
                input.reason,
            )
            if row is None:
                state = await db.fetchval("SELECT state FROM invitations WHERE id = $1", input.invitation_id)
                return CloseInvitationOutput(state=InvitationState(state))
            await audit(
                db,
                row["enterprise_id"],
                row["partner_id"],
                input.actor,
                f"invitation_{input.state.value}",
                invitation_id=str(input.invitation_id),
                sends=row["sends"],
                reason=input.reason,
            )
        activity.logger.info(
            "invitation %s",
            input.state.value,
            extra={"invitation_id": input.invitation_id, "partner_id": row["partner_id"]},
        )
        count(
            "partners_invitations_closed", "Invitations closed without acceptance, by state.", state=input.state.value
        )
        return CloseInvitationOutput(state=input.state)
