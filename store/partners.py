"""PartnerStore: the partner aggregate's writes, registration and deactivation (the
workflows' steps: activities/partners.py runs them)."""

from __future__ import annotations

import logging

import asyncpg

from partners.activity_io import DeactivatePartnerInput, DeactivatePartnerOutput, RegisterPartnerInput
from partners.errors import ErrorCode, Refused
from partners.events import AuditAction
from partners.metrics import count
from partners.models import PartnerStatus, Registration
from partners.rules import public_mail_domains
from partners.texts import Locale
from store.mail_feedback import refuse_if_suppressed
from store.mail_quota import MailQuota, refuse_past_daily_limit
from store.sql import (
    PARTNERS_COUNTED,
    Db,
    audit,
    close_pending_invitations,
    require_registered_domain,
)

log = logging.getLogger(__name__)


class PartnerStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        default_partner_limit: int,
        default_locale: Locale,
        blocked_domains: frozenset[str] = frozenset(),
        daily_registrations: int | None = None,
        mail_quota: MailQuota | None = None,
    ) -> None:
        """`daily_registrations`: the partners an enterprise may register in 24 hours;
        `mail_quota`: counts the first admin's mail like any invitation's (None: neither)."""
        self._pool = pool
        self._blocked_domains = blocked_domains
        self._daily_registrations = daily_registrations
        self._mail_quota = mail_quota
        self._default_partner_limit = default_partner_limit
        self._default_locale = default_locale

    async def register_partner(self, input: RegisterPartnerInput) -> Registration:
        """R2, R3 and R6 in one transaction, serialised per enterprise by its row lock;
        the first admin's invitation is stored with the partner."""
        partner = input.partner
        registration = Registration(partner_id=input.partner_id, invitation_id=input.invitation_id)
        async with self._pool.acquire() as db, db.transaction():
            # A retry after a commit whose answer was lost finds its own partner.
            if await db.fetchval("SELECT 1 FROM partners WHERE id = $1", input.partner_id):
                return registration
            if public := public_mail_domains(partner.domains, self._blocked_domains):
                raise Refused(
                    ErrorCode.DOMAIN_NOT_ALLOWED,
                    f"Public mail providers' domains are never a partner's: {', '.join(public)}.",
                    domains=public,
                )
            require_registered_domain(partner.admin.email, partner.domains)
            await refuse_if_suppressed(db, partner.admin.email)
            # Created on its first partner, named and locked either way (ON CONFLICT DO
            # UPDATE takes the row lock): concurrent registrations count one after
            # another. A refusal below rolls the naming back with the rest.
            enterprise = await db.fetchrow(
                "INSERT INTO enterprises AS e (id, display_name, locale) VALUES ($1, $2, $3)"
                " ON CONFLICT (id) DO UPDATE SET display_name = coalesce($2, e.display_name),"
                " locale = coalesce($3, e.locale)"
                " RETURNING e.partner_limit, e.locale",
                input.enterprise_id,
                partner.enterprise_name,
                partner.locale,
            )
            assert enterprise is not None
            limit = enterprise["partner_limit"]
            if limit is None:
                limit = self._default_partner_limit
            found = await db.fetchrow(
                f"SELECT {PARTNERS_COUNTED} AS used,"  # noqa: S608 (a constant)
                " array(SELECT domain FROM partner_domains"
                " WHERE enterprise_id = $1 AND domain = ANY($2::text[]) AND NOT released ORDER BY domain) AS taken",
                input.enterprise_id,
                partner.domains,
            )
            assert found is not None
            if found["used"] >= limit:
                raise Refused(
                    ErrorCode.PARTNER_LIMIT_REACHED,
                    f"The enterprise has {found['used']} partners, its limit is {limit}.",
                    limit=limit,
                )
            if names := found["taken"]:
                raise Refused(
                    ErrorCode.DOMAIN_TAKEN,
                    f"Already registered for another partner: {', '.join(names)}.",
                    domains=names,
                )
            if self._daily_registrations is not None:
                await self._refuse_past_daily_registrations(db, input.enterprise_id, self._daily_registrations)
            # One statement (a round trip) for the three writes; the foreign keys are
            # checked at its end, when the partner row is there.
            await db.execute(
                "WITH partner AS (INSERT INTO partners (id, enterprise_id, name, status, created_by)"
                " VALUES ($1, $2, $10, 'pending', $8)),"
                " domains AS (INSERT INTO partner_domains (partner_id, enterprise_id, domain)"
                " SELECT $1, $2, unnest($11::text[]))"
                " INSERT INTO invitations (id, partner_id, email, first_name, last_name, role,"
                " purpose, state, max_sends, invited_by, locale, workflow_id)"
                " VALUES ($3, $1, $4, $5, $6, 'admin', 'first_admin', 'pending', $7, $8, $9, $12)",
                input.partner_id,
                input.enterprise_id,
                input.invitation_id,
                partner.admin.email,
                partner.admin.first_name,
                partner.admin.last_name,
                input.max_sends,
                input.actor,
                enterprise["locale"] or self._default_locale,
                partner.name,
                partner.domains,
                input.workflow_id,
            )
            if self._mail_quota is not None:
                await self._mail_quota.claim(db, input.partner_id, partner.admin.email)
            await audit(
                db,
                input.enterprise_id,
                input.partner_id,
                input.actor,
                AuditAction.PARTNER_REGISTERED,
                name=partner.name,
                domains=partner.domains,
                admin=partner.admin.email,
                invitation_id=str(input.invitation_id),
            )
        log.info("partner registered", extra={"partner_id": input.partner_id})
        count("partners_registered", "Partners registered (pending until their admin accepts).")
        return registration

    @staticmethod
    async def _refuse_past_daily_registrations(db: Db, enterprise_id: str, limit: int) -> None:
        """Registering and deactivating partners in a loop would mail their first admins
        without end: at most `limit` registrations in 24 hours (deactivated ones count).
        Under the enterprise's row lock, as the partner count is."""
        freed_in = await db.fetchval(
            "SELECT extract(epoch FROM created_at + interval '24 hours' - now()) FROM partners"
            " WHERE enterprise_id = $1 AND created_at > now() - interval '24 hours'"
            " ORDER BY created_at DESC OFFSET $2 LIMIT 1",
            enterprise_id,
            limit - 1,
        )
        what = f"The enterprise registered {limit} partners in the last 24 hours, the most allowed"
        refuse_past_daily_limit(ErrorCode.TOO_MANY_REGISTRATIONS, freed_in, limit, what)

    async def deactivate_partner(self, input: DeactivatePartnerInput) -> DeactivatePartnerOutput:
        """R10 in one transaction under the partner's row lock, the lock grants take too:
        a grant racing this either commits first (and this refuses) or is refused."""
        async with self._pool.acquire() as db, db.transaction():
            partner = await db.fetchrow(
                "SELECT enterprise_id, status FROM partners WHERE id = $1 FOR UPDATE", input.partner_id
            )
            if partner is None or partner["enterprise_id"] != input.enterprise_id:
                raise Refused(ErrorCode.NOT_FOUND, "No such partner.")
            if partner["status"] == PartnerStatus.DEACTIVATED:
                return DeactivatePartnerOutput(newly_deactivated=False)
            apis = await db.fetch(
                "SELECT ref, name FROM partner_grants"
                " WHERE partner_id = $1 AND kind = 'api' AND revoked_at IS NULL ORDER BY ref",
                input.partner_id,
            )
            if apis:
                raise Refused(
                    ErrorCode.API_ACCESS_GRANTED,
                    f"Revoke every API first: {', '.join(r['ref'] for r in apis)}.",
                    apis=[dict(r) for r in apis],
                )
            await db.execute(
                # R23: from suspended too, its suspension ending with it.
                "UPDATE partners SET status = 'deactivated', deactivated_at = now(), suspended_at = NULL,"
                " suspended_reason = NULL, suspended_from = NULL WHERE id = $1",
                input.partner_id,
            )
            # The slot (R2) and the domains (R3) are free for a new partner.
            await db.execute("UPDATE partner_domains SET released = true WHERE partner_id = $1", input.partner_id)
            await db.execute(
                "UPDATE members SET active = false, ended_at = now(), ended_by = $2, end_reason = 'partner_deactivated'"
                " WHERE partner_id = $1 AND active",
                input.partner_id,
                input.actor,
            )
            await db.execute(
                "UPDATE partner_grants SET revoked_at = now(), revoked_by = $2"
                " WHERE partner_id = $1 AND revoked_at IS NULL",
                input.partner_id,
                input.actor,
            )
            cancelled = await close_pending_invitations(db, input.partner_id, "cancelled", reason="partner deactivated")
            await audit(
                db,
                partner["enterprise_id"],
                input.partner_id,
                input.actor,
                AuditAction.PARTNER_DEACTIVATED,
                cancelled_invitations=[str(c.invitation_id) for c in cancelled],
            )
        log.info("partner deactivated", extra={"partner_id": input.partner_id})
        count("partners_deactivated", "Partners deactivated.")
        return DeactivatePartnerOutput(newly_deactivated=True, cancelled=cancelled)
