"""SendLedger: one row per (invitation, send number), so that a mail goes out once.

Only the mail activity uses it: it records the link's token hash and the send before
talking to SMTP, and the send as done after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from partners.activity_io import SendFailure
from partners.errors import ErrorCode, Refused
from partners.events import AuditAction
from partners.models import InvitationState, PartnerStatus, Role
from partners.rules import is_mailbox
from partners.texts import Locale
from store.mail_quota import MailQuota
from store.sql import audit


@dataclass(frozen=True)
class SendTicket:
    """What the mail activity needs to compose one send; None fields when nothing is to send."""

    closed: bool
    already_sent: bool
    held: bool = False  # its partner is suspended: nothing is sent or recorded (R23)
    state: InvitationState = InvitationState.PENDING
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    role: Role = Role.MEMBER
    partner_name: str = ""
    enterprise_name: str = ""
    invited_by: str = ""
    expires_at: datetime | None = None
    locale: Locale = Locale.PT_BR
    partner_id: UUID | None = None
    has_logo: bool = False


@dataclass(frozen=True)
class NoticeTicket:
    """What a notice to an invitation's inviter needs (R24): whom, about whom, in which words."""

    inviter: str
    email: str
    first_name: str
    last_name: str
    purpose: str
    locale: Locale
    partner_name: str
    enterprise_name: str


class SendLedger:
    def __init__(self, pool: asyncpg.Pool, mail_quota: MailQuota | None = None) -> None:
        """`mail_quota`: counts the notices to inviters like any mail (None: not counted)."""
        self._pool = pool
        self._mail_quota = mail_quota

    async def begin_notice(self, invitation_id: UUID, outcome: InvitationState) -> NoticeTicket | None:
        """The notice of `outcome` to the invitation's inviter, once: None when it went out
        already, or is skipped (an inviter who is no mailbox, an operator; a quota reached)."""
        async with self._pool.acquire() as db, db.transaction():
            row = await db.fetchrow(
                "SELECT i.invited_by, i.email, i.first_name, i.last_name, i.purpose, i.locale, i.partner_id,"
                " p.name AS partner_name, coalesce(e.display_name, e.id) AS enterprise_name, n.status"
                " FROM invitations i JOIN partners p ON p.id = i.partner_id"
                " JOIN enterprises e ON e.id = p.enterprise_id"
                " LEFT JOIN inviter_notices n ON n.invitation_id = i.id AND n.outcome = $2"
                " WHERE i.id = $1 FOR UPDATE OF i",
                invitation_id,
                outcome.value,
            )
            if row is None or row["status"] in ("sent", "skipped"):
                return None
            if row["status"] is None:
                status = "sending" if is_mailbox(row["invited_by"]) else "skipped"
                if status == "sending" and self._mail_quota is not None:
                    try:
                        async with db.transaction():  # a refusal gives back only the claim
                            await self._mail_quota.claim(db, row["partner_id"], row["invited_by"], notice=True)
                    except Refused:
                        status = "skipped"
                await db.execute(
                    "INSERT INTO inviter_notices (invitation_id, outcome, status) VALUES ($1, $2, $3)",
                    invitation_id,
                    outcome.value,
                    status,
                )
                if status == "skipped":
                    return None
        return NoticeTicket(
            inviter=row["invited_by"],
            email=row["email"],
            first_name=row["first_name"],
            last_name=row["last_name"],
            purpose=row["purpose"],
            locale=Locale(row["locale"]),
            partner_name=row["partner_name"],
            enterprise_name=row["enterprise_name"],
        )

    async def finish_notice(self, invitation_id: UUID, outcome: InvitationState) -> None:
        await self._pool.execute(
            "UPDATE inviter_notices SET status = 'sent', at = now() WHERE invitation_id = $1 AND outcome = $2",
            invitation_id,
            outcome.value,
        )

    async def begin_send(
        self,
        invitation_id: UUID,
        send_number: int,
        token_hash: bytes,
        next_send_at: datetime | None,
        expires_at: datetime,
        requested_by: str | None = None,
        return_tag: str | None = None,
    ) -> SendTicket:
        """`return_tag`: the tag of this send's return path (R24), by which a delivery
        report finds it."""
        async with self._pool.acquire() as db, db.transaction():
            row = await db.fetchrow(
                "SELECT i.email, i.first_name, i.last_name, i.role, i.state, i.invited_by, i.locale, i.partner_id,"
                " p.logo IS NOT NULL AS has_logo,"
                " p.name AS partner_name, coalesce(e.display_name, e.id) AS enterprise_name, s.status AS send_status,"
                " p.status AS partner_status"
                " FROM invitations i JOIN partners p ON p.id = i.partner_id"
                " JOIN enterprises e ON e.id = p.enterprise_id"
                " LEFT JOIN invitation_sends s ON s.invitation_id = i.id AND s.send_number = $2"
                " WHERE i.id = $1 FOR UPDATE OF i",
                invitation_id,
                send_number,
            )
            if row is None:
                raise Refused(ErrorCode.NOT_FOUND, "No such invitation.")
            if row["state"] != InvitationState.PENDING:
                return SendTicket(closed=True, already_sent=False, state=InvitationState(row["state"]))
            if row["send_status"] == "sent":
                return SendTicket(closed=False, already_sent=True)
            if row["partner_status"] == PartnerStatus.SUSPENDED:
                # R23: its mails wait; the workflow holds this send until the resume.
                return SendTicket(closed=False, already_sent=False, held=True)
            # The attempt, its link's token and the invitation's schedule: one round trip.
            await db.execute(
                "WITH attempt AS (INSERT INTO invitation_sends"
                " (invitation_id, send_number, status, requested_by, return_tag)"
                " VALUES ($1, $2, 'sending', $3, $7) ON CONFLICT (invitation_id, send_number)"
                " DO UPDATE SET attempts = invitation_sends.attempts + 1),"
                " token AS (INSERT INTO invitation_tokens (token_hash, invitation_id, send_number) VALUES ($4, $1, $2))"
                " UPDATE invitations SET sends = greatest(sends, $2), next_send_at = $5, expires_at = $6 WHERE id = $1",
                invitation_id,
                send_number,
                requested_by,
                token_hash,
                next_send_at,
                expires_at,
                return_tag,
            )
        return SendTicket(
            closed=False,
            already_sent=False,
            email=row["email"],
            first_name=row["first_name"],
            last_name=row["last_name"],
            role=Role(row["role"]),
            partner_name=row["partner_name"],
            enterprise_name=row["enterprise_name"],
            invited_by=row["invited_by"],
            expires_at=expires_at,
            locale=Locale(row["locale"]),
            partner_id=row["partner_id"],
            has_logo=row["has_logo"],
        )

    async def record_send_failure(self, failure: SendFailure, token_hash: bytes) -> None:
        """Shown in the partner view while the mail is retried; cleared by the next success.
        The failed attempt's link was never delivered: its token goes, so a relay's outage
        leaves one token per send, not one per attempt (R17). An attempt that died without
        an answer (a worker killed) keeps its token: its mail may have gone out."""
        await self._pool.execute(
            "WITH gone AS (DELETE FROM invitation_tokens WHERE token_hash = $3)"
            " UPDATE invitations SET last_error = $2 WHERE id = $1 AND state = 'pending'",
            failure.invitation_id,
            failure.error,
            token_hash,
        )

    async def finish_send(self, invitation_id: UUID, send_number: int, requested_by: str | None = None) -> None:
        async with self._pool.acquire() as db, db.transaction():
            row = await db.fetchrow(
                "WITH sent AS (UPDATE invitation_sends SET status = 'sent', sent_at = now()"
                " WHERE invitation_id = $1 AND send_number = $2 RETURNING attempts),"
                " cleared AS (UPDATE invitations SET last_error = NULL"
                " WHERE id = $1 AND state = 'pending' AND last_error IS NOT NULL)"
                " SELECT p.enterprise_id, i.partner_id, sent.attempts"
                " FROM sent, invitations i JOIN partners p ON p.id = i.partner_id WHERE i.id = $1",
                invitation_id,
                send_number,
            )
            if row is None:
                return
            await audit(
                db,
                row["enterprise_id"],
                row["partner_id"],
                requested_by or "system",
                AuditAction.INVITATION_RESENT if requested_by else AuditAction.INVITATION_SENT,
                invitation_id=str(invitation_id),
                send_number=send_number,
                attempts=row["attempts"],
            )
