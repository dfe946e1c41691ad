"""MailFeedback (R24): what a delivery report or a complaint changes, found by the return
path's tag of the send it is about, and the suppression list of mailboxes that complained.

A hard bounce closes its invitation `undeliverable` at once, the state the relay's own
refusals leave (its reminders end; audited and emitted). A complaint suppresses the
mailbox: every new invitation to it is refused until an operator lifts it, and its
pending invitations are cancelled (nobody is mailed again who said the mail was unwanted).
A report about no send of ours, or about a send whose invitation is closed, changes nothing.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

import asyncpg

from partners.errors import ErrorCode, Refused
from partners.events import AuditAction
from partners.models import InvitationWorkflowRef
from store.mail_quota import mailbox
from store.sql import Db, audit

log = logging.getLogger(__name__)
# store.mail_quota.mailbox, in SQL: the local part without its +tag, lower-cased.
MAILBOX_OF_EMAIL = "(lower(split_part(split_part(email, '@', 1), '+', 1)) || '@' || lower(split_part(email, '@', 2)))"


class FeedbackOutcome(StrEnum):
    """What a report changed: the `outcome` label of `partners_mail_feedback_total`."""

    UNDELIVERABLE = "undeliverable"  # a hard bounce closed its invitation
    SUPPRESSED = "suppressed"  # a complaint suppressed the mailbox
    UNCHANGED = "unchanged"  # a soft bounce, or an unreadable report: nothing to do
    UNMATCHED = "unmatched"  # no send of ours has this tag (forged, or pruned)
    CLOSED = "closed"  # its invitation was closed already


class MailFeedback:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def hard_bounce(self, tag: str, detail: str) -> tuple[FeedbackOutcome, list[InvitationWorkflowRef]]:
        async with self._pool.acquire() as db, db.transaction():
            found = await _send_of(db, tag)
            if found is None:
                return FeedbackOutcome.UNMATCHED, []
            if found["state"] != "pending":
                return FeedbackOutcome.CLOSED, []
            await db.execute(
                "UPDATE invitations SET state = 'undeliverable', closed_at = now(), next_send_at = NULL,"
                " last_error = $2 WHERE id = $1",
                found["invitation_id"],
                detail,
            )
            await audit(
                db,
                found["enterprise_id"],
                found["partner_id"],
                "system",
                AuditAction.INVITATION_UNDELIVERABLE,
                invitation_id=str(found["invitation_id"]),
                send_number=found["send_number"],
                reason=detail,
            )
        log.info("invitation undeliverable: its mail bounced", extra={"invitation_id": found["invitation_id"]})
        return FeedbackOutcome.UNDELIVERABLE, [_ref(found)]

    async def complaint(self, tag: str) -> tuple[FeedbackOutcome, list[InvitationWorkflowRef]]:
        async with self._pool.acquire() as db, db.transaction():
            found = await _send_of(db, tag)
            if found is None:
                return FeedbackOutcome.UNMATCHED, []
            box = mailbox(found["email"])
            await db.execute(
                "INSERT INTO suppressions (mailbox, reason, invitation_id, enterprise_id)"
                " VALUES ($1, 'complaint', $2, $3) ON CONFLICT (mailbox) DO NOTHING",
                box,
                found["invitation_id"],
                found["enterprise_id"],
            )
            await audit(
                db,
                found["enterprise_id"],
                found["partner_id"],
                "system",
                AuditAction.ADDRESS_SUPPRESSED,
                invitation_id=str(found["invitation_id"]),
                mailbox=box,
                reason="complaint",
            )
            # Its pending invitations, whichever partner's: cancelled, never mailed again.
            rows = await db.fetch(
                "UPDATE invitations SET state = 'cancelled', closed_at = now(), next_send_at = NULL,"  # noqa: S608
                " last_error = 'the recipient reported an invitation mail as unwanted'"
                " FROM partners p WHERE p.id = invitations.partner_id AND invitations.state = 'pending'"
                f" AND {MAILBOX_OF_EMAIL} = $1"
                " RETURNING invitations.id, invitations.workflow_id, invitations.partner_id, p.enterprise_id",
                box,
            )
            for row in rows:
                await audit(
                    db,
                    row["enterprise_id"],
                    row["partner_id"],
                    "system",
                    AuditAction.INVITATION_CANCELLED,
                    invitation_id=str(row["id"]),
                    reason="complaint",
                )
        log.info("a mailbox complained: suppressed", extra={"invitation_id": found["invitation_id"]})
        return FeedbackOutcome.SUPPRESSED, [
            InvitationWorkflowRef(invitation_id=r["id"], workflow_id=r["workflow_id"]) for r in rows
        ]

    async def suppressions(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT mailbox, reason, invitation_id, enterprise_id, created_at FROM suppressions"
            " ORDER BY created_at DESC, mailbox LIMIT $1",
            limit,
        )
        return [dict(r) for r in rows]

    async def lift(self, address: str, actor: str) -> dict[str, Any]:
        """Lifts a suppression: the mailbox may be invited again (audited as the operator)."""
        box = mailbox(address)
        async with self._pool.acquire() as db, db.transaction():
            row = await db.fetchrow(
                "DELETE FROM suppressions WHERE mailbox = $1 RETURNING mailbox, reason, enterprise_id, created_at", box
            )
            if row is None:
                raise Refused(ErrorCode.NOT_FOUND, "No suppression of this mailbox.")
            await audit(db, row["enterprise_id"], None, actor, AuditAction.SUPPRESSION_LIFTED, mailbox=box)
        return dict(row)


async def refuse_if_suppressed(db: Db, email: str) -> None:
    """R24: no new invitation to a mailbox that complained."""
    if await db.fetchval("SELECT 1 FROM suppressions WHERE mailbox = $1", mailbox(email)):
        raise Refused(
            ErrorCode.ADDRESS_SUPPRESSED,
            "This mailbox reported our mail as unwanted; an operator must lift its suppression first.",
        )


async def _send_of(db: Db, tag: str) -> asyncpg.Record | None:
    """The send the tag names, its invitation locked: a report and the workflow's own
    close of the invitation take turns."""
    return await db.fetchrow(
        "SELECT s.invitation_id, s.send_number, i.state, i.email, i.workflow_id, i.partner_id, p.enterprise_id"
        " FROM invitation_sends s JOIN invitations i ON i.id = s.invitation_id JOIN partners p ON p.id = i.partner_id"
        " WHERE s.return_tag = $1 FOR UPDATE OF i",
        tag,
    )


def _ref(found: asyncpg.Record) -> InvitationWorkflowRef:
    return InvitationWorkflowRef(invitation_id=found["invitation_id"], workflow_id=found["workflow_id"])
