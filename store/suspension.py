"""Suspensions (R23): an account holder pauses a partner now and puts it back exactly as it
was. One transaction each, under the partner's row lock, the lock an acceptance, a grant
and a deactivation take too: whichever commits first, the other sees it.

While suspended the partner's status is `suspended`, and everything else stays as it was:
its members, grants and pending invitations. Access reads only active partners, so it
grants nothing from the commit; acceptance and the mail ledger read the status in their
own transactions (store/invitations.py, store/sends.py). A resume puts back the status
the partner had and moves its pending invitations' schedule (next send, expiry) on by the
time it was suspended: what was left of each is left again.
"""

from __future__ import annotations

import logging
from uuid import UUID

import asyncpg

from partners.errors import ErrorCode, Refused
from partners.events import AuditAction
from partners.models import InvitationWorkflowRef, PartnerStatus
from store.sql import audit, lock_partner

log = logging.getLogger(__name__)


class Suspensions:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def suspend(self, partner_id: UUID, enterprise_id: str, actor: str, reason: str | None) -> bool:
        """Suspends the partner; False when it was suspended already (nothing changes)."""
        async with self._pool.acquire() as db, db.transaction():
            partner = await lock_partner(db, partner_id, enterprise_id)
            if partner["status"] == PartnerStatus.SUSPENDED:
                return False
            await db.execute(
                "UPDATE partners SET status = 'suspended', suspended_at = now(), suspended_reason = $2,"
                " suspended_from = status WHERE id = $1",
                partner_id,
                reason,
            )
            await audit(db, enterprise_id, partner_id, actor, AuditAction.PARTNER_SUSPENDED, reason=reason)
        log.info("partner suspended", extra={"partner_id": partner_id})
        return True

    async def resume(self, partner_id: UUID, enterprise_id: str, actor: str) -> list[InvitationWorkflowRef]:
        """Resumes the partner as it was; answers the workflows of its pending invitations,
        to be told that their schedule moved on."""
        async with self._pool.acquire() as db, db.transaction():
            partner = await lock_partner(db, partner_id, enterprise_id)
            if partner["status"] != PartnerStatus.SUSPENDED:
                raise Refused(ErrorCode.PARTNER_NOT_SUSPENDED, f"The partner is {partner['status']}, not suspended.")
            # The time it was suspended is given back to each pending invitation.
            rows = await db.fetch(
                "UPDATE invitations i SET expires_at = i.expires_at + (now() - p.suspended_at),"
                " next_send_at = i.next_send_at + (now() - p.suspended_at)"
                " FROM partners p WHERE p.id = $1 AND i.partner_id = $1 AND i.state = 'pending'"
                " RETURNING i.id, i.workflow_id",
                partner_id,
            )
            status = await db.fetchval(
                "UPDATE partners SET status = suspended_from, suspended_at = NULL, suspended_reason = NULL,"
                " suspended_from = NULL WHERE id = $1 RETURNING status",
                partner_id,
            )
            await audit(db, enterprise_id, partner_id, actor, AuditAction.PARTNER_RESUMED, status=status)
        log.info("partner resumed", extra={"partner_id": partner_id})
        return [InvitationWorkflowRef(invitation_id=r["id"], workflow_id=r["workflow_id"]) for r in rows]
