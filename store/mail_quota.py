"""MailQuota: how many invitation mails a person may be sent by hand, counted in PostgreSQL.

No one may be mail-bombed through the service: an address receives at most
`per_recipient` invitations or manual resends from one partner in 24 hours, however they
were asked for (a new invitation, a batch row, an admin replacement, a resend, a revival),
and a partner sends at most `per_partner` in 24 hours. Automatic reminders are not counted:
`INVITATION_MAX_SENDS` bounds them already.

A new invitation, a replacement or a revival claims its mail in the transaction that
admits it, after every other rule (a repeated invitation hears `already_invited`); a resend
claims before its update and gives the claim back if it is refused, so a refusal costs
nothing. The claims of one partner are serialised by an advisory lock: every process
shares one count. The address is kept as a hash only, and a
claim lives 24 hours: old ones are deleted as new ones come.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg

from partners.errors import ErrorCode, Refused
from store.sql import Db


def address_hash(email: str) -> bytes:
    return hashlib.sha256(email.strip().lower().encode()).digest()


class MailQuota:
    def __init__(self, pool: asyncpg.Pool, *, per_recipient: int, per_partner: int) -> None:
        self._pool = pool
        self._per_recipient = per_recipient
        self._per_partner = per_partner

    async def claim(self, db: Db, partner_id: UUID, email: str) -> int:
        """Counts one mail to `email` from `partner_id` in the caller's transaction (which
        gives it back by rolling back), or refuses: 429 `too_many_invitations` with
        `retry_after`. Where the invitation is admitted, after every other rule, so that
        a request refused for another reason hears that reason."""
        await db.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('mail-quota:' || $1::uuid::text, 0))", partner_id
        )
        await db.execute(
            "DELETE FROM mail_quota WHERE partner_id = $1 AND at <= now() - interval '24 hours'", partner_id
        )
        email_hash = address_hash(email)
        # Where a limit is reached, the claim whose expiry frees a place: the limit-th newest.
        by_recipient = await db.fetchval(
            "SELECT extract(epoch FROM at + interval '24 hours' - now()) FROM mail_quota"
            " WHERE partner_id = $1 AND email_hash = $2 ORDER BY at DESC OFFSET $3 LIMIT 1",
            partner_id,
            email_hash,
            self._per_recipient - 1,
        )
        _refuse_past(by_recipient, self._per_recipient, "this address")
        by_partner = await db.fetchval(
            "SELECT extract(epoch FROM at + interval '24 hours' - now()) FROM mail_quota"
            " WHERE partner_id = $1 ORDER BY at DESC OFFSET $2 LIMIT 1",
            partner_id,
            self._per_partner - 1,
        )
        _refuse_past(by_partner, self._per_partner, "the partner's invitees")
        claim: int = await db.fetchval(
            "INSERT INTO mail_quota (partner_id, email_hash) VALUES ($1, $2) RETURNING id", partner_id, email_hash
        )
        return claim

    @contextlib.asynccontextmanager
    async def spending(self, partner_id: UUID, email: str) -> AsyncIterator[None]:
        """Around a resend by hand, which no transaction of ours admits: the claim is
        committed first and given back if the resend is refused or fails."""
        async with self._pool.acquire() as db, db.transaction():
            claim = await self.claim(db, partner_id, email)
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                await self._pool.execute("DELETE FROM mail_quota WHERE id = $1", claim)
            raise


def _refuse_past(freed_in: float | None, limit: int, to_whom: str) -> None:
    if freed_in is None:
        return
    wait = max(1, math.ceil(freed_in))
    raise Refused(
        ErrorCode.TOO_MANY_INVITATIONS,
        f"{limit} invitations or resends have gone to {to_whom} in the last 24 hours, the most allowed;"
        f" try again in {_in_words(wait)}.",
        retry_after=wait,
        limit=limit,
    )


def _in_words(seconds: int) -> str:
    if seconds >= 3600:
        return f"{math.ceil(seconds / 3600)} h"
    return f"{math.ceil(seconds / 60)} min"
