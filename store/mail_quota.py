"""MailQuota: how many invitation mails a person, a partner and a domain may be sent, counted in PostgreSQL.

No one may be mail-bombed through the service (R18, R24). In any 24 hours:
- a mailbox receives at most `per_recipient` invitations or manual resends from one
  enterprise, however they were asked for (a first admin's at registration, a new
  invitation, a batch row, an admin replacement, a resend, a revival) and through however
  many partners (registering and deactivating partners mails no one more). A mailbox is
  the address with its local part's `+tag` dropped and case-folded: `ceo+1@` and
  `CEO+2@` are `ceo@`;
- a partner sends at most `per_partner`;
- one domain receives at most `per_domain` from one enterprise: the domains are the
  account holder's word, not verified, and the subject carries the enterprise's text.
Automatic reminders are not counted: `INVITATION_MAX_SENDS` bounds them already.

A new invitation, a replacement, a revival or a registration claims its mail in the
transaction that admits it, after every other rule (a repeated invitation hears
`already_invited`); a resend claims before its update and gives the claim back if it is
refused, so a refusal costs nothing. The claims of one enterprise are serialised by an
advisory lock: every process shares one count. The address is kept as a hash only, and
a claim lives 24 hours: old ones are deleted as new ones come.
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


def mailbox(email: str) -> str:
    """The mailbox an address reaches: its local part without a `+tag`, case-folded."""
    local, _, domain = email.strip().rpartition("@")
    return f"{local.split('+', 1)[0].casefold()}@{domain.casefold()}"


def address_hash(email: str) -> bytes:
    return hashlib.sha256(mailbox(email).encode()).digest()


class MailQuota:
    def __init__(self, pool: asyncpg.Pool, *, per_recipient: int, per_partner: int, per_domain: int) -> None:
        self._pool = pool
        self._per_recipient = per_recipient
        self._per_partner = per_partner
        self._per_domain = per_domain

    async def claim(self, db: Db, partner_id: UUID, email: str, *, notice: bool = False) -> int:
        """Counts one mail to `email` from `partner_id` in the caller's transaction (which
        gives it back by rolling back), or refuses: 429 `too_many_invitations` with
        `retry_after`. Where the invitation is admitted, after every other rule, so that
        a request refused for another reason hears that reason. A `notice` to an inviter
        (R24) counts for its mailbox and domain, not against the partner's invitations."""
        enterprise_id = await db.fetchval("SELECT enterprise_id FROM partners WHERE id = $1", partner_id)
        await db.execute("SELECT pg_advisory_xact_lock(hashtextextended('mail-quota:' || $1, 0))", enterprise_id)
        await db.execute(
            "DELETE FROM mail_quota WHERE enterprise_id = $1 AND at <= now() - interval '24 hours'", enterprise_id
        )
        email_hash, domain = address_hash(email), mailbox(email).rpartition("@")[2]
        # Where a limit is reached, the claim whose expiry frees a place: the limit-th newest.
        for where, key, limit, to_whom in (
            ("enterprise_id = $1 AND email_hash = $2", email_hash, self._per_recipient, "this address"),
            (
                "enterprise_id = $1 AND partner_id = $2 AND NOT notice",
                partner_id,
                self._per_partner,
                "the partner's invitees",
            ),
            ("enterprise_id = $1 AND domain = $2", domain, self._per_domain, f"addresses at {domain}"),
        ):
            freed_in = await db.fetchval(
                f"SELECT extract(epoch FROM at + interval '24 hours' - now()) FROM mail_quota"  # noqa: S608
                f" WHERE {where} ORDER BY at DESC OFFSET $3 LIMIT 1",
                enterprise_id,
                key,
                limit - 1,
            )
            _refuse_past(freed_in, limit, to_whom)
        claim: int = await db.fetchval(
            "INSERT INTO mail_quota (partner_id, email_hash, enterprise_id, domain, notice)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id",
            partner_id,
            email_hash,
            enterprise_id,
            domain,
            notice,
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
    refuse_past_daily_limit(
        ErrorCode.TOO_MANY_INVITATIONS,
        freed_in,
        limit,
        f"{limit} invitations or resends have gone to {to_whom} in the last 24 hours, the most allowed",
    )


def refuse_past_daily_limit(code: ErrorCode, freed_in: float | None, limit: int, what: str) -> None:
    """A daily limit reached (`freed_in` seconds until the oldest counted leaves the 24
    hours; None: not reached): 429 `code` with `Retry-After`, saying `what` and when."""
    if freed_in is None:
        return
    wait = max(1, math.ceil(freed_in))
    raise Refused(code, f"{what}; try again in {_in_words(wait)}.", retry_after=wait, limit=limit)


def _in_words(seconds: int) -> str:
    if seconds >= 3600:
        return f"{math.ceil(seconds / 3600)} h"
    return f"{math.ceil(seconds / 60)} min"
