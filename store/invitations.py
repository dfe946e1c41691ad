"""InvitationStore: the invitation aggregate's writes, each one transaction.

Every check an invitation must pass (R5 to R8) is made here, under the partner's row
lock, whichever path created or revived it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import asyncpg

from partners.activity_io import (
    AcceptInvitationInput,
    AcceptInvitationOutput,
    CloseInvitationInput,
    CloseInvitationOutput,
    CreateInvitationInput,
    CreateInvitationOutput,
    InvitationRef,
    ReopenInvitationInput,
    ReopenInvitationOutput,
    StoredSchedule,
)
from partners.errors import ErrorCode, Refused
from partners.events import AuditAction
from partners.ids import invitation_workflow_id
from partners.metrics import count, delay
from partners.models import InvitationPurpose, InvitationState, PartnerStatus, Role
from partners.rules import TOKEN_HASH_PATTERN, resend_limit_refusal
from partners.texts import Locale
from store.admission import admit
from store.mail_quota import MailQuota
from store.sql import (
    audit,
    audit_all,
    lock_partner,
    refuse_if_deactivated,
    refuse_if_suspended,
)

log = logging.getLogger(__name__)


class InvitationStore:
    def __init__(self, pool: asyncpg.Pool, *, default_locale: Locale, mail_quota: MailQuota | None = None) -> None:
        """`mail_quota`: counts each new invitation's mail (None: not counted). Its writes
        are the workflows' steps (activities/invitations.py runs them): the changes they
        make are counted on the worker's meter (`partners.metrics`)."""
        self._pool = pool
        self._default_locale = default_locale
        self._mail_quota = mail_quota

    async def create_invitation(self, input: CreateInvitationInput) -> CreateInvitationOutput:
        """An invitation of a partner that exists, admitted (R5-R8) in one transaction."""
        new = input.invitation
        async with self._pool.acquire() as db, db.transaction():
            # The partner row lock serialises invitations of one partner.
            partner = await lock_partner(db, new.partner_id, input.enterprise_id)
            existing = await db.fetchval("SELECT purpose FROM invitations WHERE id = $1", input.invitation_id)
            if existing is not None:  # a retry after the commit
                return CreateInvitationOutput(purpose=InvitationPurpose(existing))
            purpose, superseded = await admit(
                db,
                partner,
                new.partner_id,
                input.invitation_id,
                new.invitee.email,
                new.role,
                actor=new.invited_by,
                inviting_member=new.purpose is InvitationPurpose.MEMBER,
            )
            if self._mail_quota is not None:
                await self._mail_quota.claim(db, new.partner_id, new.invitee.email)
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
                AuditAction.INVITATION_CREATED,
                invitation_id=str(input.invitation_id),
                email=new.invitee.email,
                role=new.role.value,
                purpose=purpose.value,
            )
        return CreateInvitationOutput(purpose=purpose, superseded=superseded)

    async def reopen_invitation(self, input: ReopenInvitationInput) -> ReopenInvitationOutput:
        """A run takes the invitation over (its workflow is gone): adopts it while pending;
        for a resend (`revive`) revives it when expired or undeliverable, as a new
        invitation in every rule (R7), with new links only. Any other state is refused
        with its code; so is a resend past the daily limit."""
        take_over = input.take_over
        async with self._pool.acquire() as db, db.transaction():
            row = await db.fetchrow(
                "SELECT i.state, i.sends, i.email, i.role, i.expires_at, i.next_send_at, i.partner_id,"
                " p.enterprise_id, p.status"
                " FROM invitations i JOIN partners p ON p.id = i.partner_id WHERE i.id = $1 FOR UPDATE OF i, p",
                input.invitation_id,
            )
            if row is None:
                raise Refused(ErrorCode.NOT_FOUND, "No such invitation.")
            refuse_if_deactivated(row["status"])
            refuse_if_suspended(row["status"])
            manual = [
                r["created_at"]
                for r in await db.fetch(
                    "SELECT created_at FROM invitation_sends WHERE invitation_id = $1 AND requested_by IS NOT NULL"
                    " AND created_at > now() - interval '24 hours' ORDER BY created_at",
                    input.invitation_id,
                )
            ]
            if take_over.revive and (
                refusal := resend_limit_refusal(manual, await db.fetchval("SELECT now()"), input.resend_daily_limit)
            ):
                raise refusal
            state = InvitationState(row["state"])
            if state is InvitationState.PENDING:
                await db.execute(
                    "UPDATE invitations SET workflow_id = $2 WHERE id = $1", input.invitation_id, input.workflow_id
                )
                schedule = {"expires_at": row["expires_at"], "next_send_at": row["next_send_at"]}
                return ReopenInvitationOutput(sends=row["sends"], manual_sends=manual, **schedule)
            if not (take_over.revive and state in (InvitationState.EXPIRED, InvitationState.UNDELIVERABLE)):
                raise Refused(ErrorCode.closed_invitation(state.value), f"The invitation is {state.value}.")
            purpose, superseded = await admit(
                db, row, row["partner_id"], input.invitation_id, row["email"], Role(row["role"]), actor=take_over.actor
            )
            await db.execute(
                "UPDATE invitations SET state = 'pending', purpose = $3, closed_at = NULL, last_error = NULL,"
                " next_send_at = NULL, expires_at = NULL, workflow_id = $2, live_from_send = sends + 1 WHERE id = $1",
                input.invitation_id,
                input.workflow_id,
                purpose.value,
            )
            await audit(
                db,
                row["enterprise_id"],
                row["partner_id"],
                take_over.actor,
                AuditAction.INVITATION_REVIVED,
                invitation_id=str(input.invitation_id),
                sends=row["sends"],
                was=state.value,
            )
        return ReopenInvitationOutput(sends=row["sends"], manual_sends=manual, superseded=superseded)

    async def accept_invitation(self, input: AcceptInvitationInput) -> AcceptInvitationOutput:
        """Acceptance and its effect in one transaction: the partner is never half-onboarded."""
        async with self._pool.acquire() as db, db.transaction():
            # Proof of the link: the hash of a token mailed for this invitation's current
            # period. Access to Temporal alone accepts nothing.
            token_hash = bytes.fromhex(input.token_hash) if TOKEN_HASH_PATTERN.fullmatch(input.token_hash) else None
            row = await db.fetchrow(
                "SELECT i.partner_id, i.email, i.first_name, i.last_name, i.role, i.purpose, i.state,"
                " i.expires_at, i.sends, i.live_from_send, p.enterprise_id, p.status AS partner_status, now() AS now,"
                " i.created_at,"
                " t.send_number"
                " FROM invitations i JOIN partners p ON p.id = i.partner_id"
                " LEFT JOIN invitation_tokens t ON t.token_hash = $2 AND t.invitation_id = i.id"
                " WHERE i.id = $1 FOR UPDATE OF i, p",
                input.invitation_id,
                token_hash,
            )
            send_number = row["send_number"] if row is not None else None
            if row is None or send_number is None or send_number < row["live_from_send"]:
                raise Refused(ErrorCode.INVALID_LINK, "Not a valid link for this invitation.")
            partner_status = PartnerStatus(row["partner_status"])
            if row["state"] != InvitationState.PENDING:
                # Already decided, by this activity's earlier attempt or by another path.
                return AcceptInvitationOutput(state=InvitationState(row["state"]), partner_status=partner_status)
            # R23: a suspended partner admits no one; the invitation stays pending for after.
            refuse_if_suspended(partner_status)
            # R7: expiry is judged where the link is used, by when it was clicked (trusted
            # within a minute: an acceptance under way when the timer fires still wins).
            clicked_at = min(max(input.clicked_at, row["now"] - _CLICK_SKEW), row["now"])
            if row["expires_at"] is not None and clicked_at >= row["expires_at"]:
                await db.execute(
                    "UPDATE invitations SET state = 'expired', closed_at = now(), next_send_at = NULL WHERE id = $1",
                    input.invitation_id,
                )
                await audit(
                    db,
                    row["enterprise_id"],
                    row["partner_id"],
                    "system",
                    AuditAction.INVITATION_EXPIRED,
                    invitation_id=str(input.invitation_id),
                    sends=row["sends"],
                    reason="link used after the invitation expired",
                )
                return AcceptInvitationOutput(state=InvitationState.EXPIRED, partner_status=partner_status)
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
            joined = await db.fetchval(
                "INSERT INTO members (partner_id, email, first_name, last_name, role)"
                " VALUES ($1, $2, $3, $4, $5)"
                # Already a member (an admin invitation of a Member): the same membership.
                " ON CONFLICT (partner_id, email) WHERE active DO UPDATE"
                # R5, R8: an acceptance never lowers an active Admin's role.
                " SET role = CASE WHEN members.role = 'admin' THEN 'admin' ELSE EXCLUDED.role END"
                " RETURNING xmax = 0",  # true: a new membership, not a Member made Admin
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
            changes: list[tuple[AuditAction, dict[str, Any]]] = [
                (
                    AuditAction.INVITATION_ACCEPTED,
                    {"invitation_id": str(input.invitation_id), "role": row["role"], "send_number": send_number},
                )
            ]
            if joined:
                changes.append((AuditAction.MEMBER_ADDED, {"email": row["email"], "role": row["role"]}))
            if partner_status is not PartnerStatus(row["partner_status"]):
                changes.append((AuditAction.PARTNER_ACTIVATED, {}))
            if previous_admin is not None:
                changes.append(
                    (
                        AuditAction.ADMIN_REPLACED,
                        {
                            "previous_admin": previous_admin,
                            "new_admin": row["email"],
                            "invitation_id": str(input.invitation_id),
                        },
                    )
                )
            await audit_all(db, row["enterprise_id"], row["partner_id"], row["email"], changes)
        log.info("invitation accepted", extra={"invitation_id": input.invitation_id, "partner_id": row["partner_id"]})
        count("partners_invitations_accepted", "Invitations accepted.", purpose=row["purpose"])
        delay("partners_invitation_acceptance_delay", "From invitation to acceptance.", row["now"] - row["created_at"])
        return AcceptInvitationOutput(state=InvitationState.ACCEPTED, partner_status=partner_status)

    async def stored_state(self, input: InvitationRef) -> CloseInvitationOutput:
        """The state a transaction elsewhere left the invitation in."""
        state = await self._pool.fetchval("SELECT state FROM invitations WHERE id = $1", input.invitation_id)
        if state is None:
            raise Refused(ErrorCode.NOT_FOUND, "No such invitation.")
        return CloseInvitationOutput(state=InvitationState(state))

    async def stored_schedule(self, input: InvitationRef) -> StoredSchedule:
        """The invitation's state and schedule as stored, and whether its partner is
        suspended: what a workflow adopts when it hears that its partner resumed (R23)."""
        row = await self._pool.fetchrow(
            "SELECT i.state, i.next_send_at, i.expires_at, p.status = 'suspended' AS suspended"
            " FROM invitations i JOIN partners p ON p.id = i.partner_id WHERE i.id = $1",
            input.invitation_id,
        )
        if row is None:
            raise Refused(ErrorCode.NOT_FOUND, "No such invitation.")
        return StoredSchedule(**dict(row))

    async def close_invitation(self, input: CloseInvitationInput) -> CloseInvitationOutput:
        """Only a pending invitation closes: an acceptance that committed first stands.
        With `hold_while_suspended` (an expiry), an invitation of a suspended partner
        stays pending and the answer says it is held (R23): its time resumes with it."""
        async with self._pool.acquire() as db, db.transaction():
            if input.hold_while_suspended:
                # Under the partner's lock (FOR SHARE): a resume committing meanwhile is seen.
                suspended = await db.fetchval(
                    "SELECT p.status = 'suspended' FROM partners p JOIN invitations i ON i.partner_id = p.id"
                    " WHERE i.id = $1 AND i.state = 'pending' FOR SHARE OF p",
                    input.invitation_id,
                )
                if suspended:
                    return CloseInvitationOutput(state=InvitationState.PENDING, held=True)
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
                AuditAction.closing(input.state.value),
                invitation_id=str(input.invitation_id),
                sends=row["sends"],
                reason=input.reason,
            )
        log.info(
            "invitation %s",
            input.state.value,
            extra={"invitation_id": input.invitation_id, "partner_id": row["partner_id"]},
        )
        count(
            "partners_invitations_closed", "Invitations closed without acceptance, by state.", state=input.state.value
        )
        return CloseInvitationOutput(state=input.state)


_CLICK_SKEW = timedelta(minutes=1)
