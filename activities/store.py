"""PartnerStore: every read and write of the partner tables.

The activity methods are the writes the workflows make; the plain methods are the reads
the API and the invitation pages make, and the ledger steps of the mail activity.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.metrics import count
from partners.errors import DomainError, ErrorCode
from partners.ids import invitation_workflow_id
from partners.messages import Locale
from partners.models import (
    AcceptInvitationInput,
    AcceptInvitationOutput,
    CloseInvitationInput,
    CloseInvitationOutput,
    CreateInvitationInput,
    CreateInvitationOutput,
    DeactivatePartnerInput,
    DeactivatePartnerOutput,
    GrantRequest,
    InvitationPurpose,
    InvitationState,
    PartnerStatus,
    RegisterPartnerInput,
    Registration,
    ReopenInvitationInput,
    ReopenInvitationOutput,
    Role,
    SendFailure,
)
from partners.rules import email_domain_is_registered, normalize_email
from partners.settings import Settings
from partners.views import (
    AdminView,
    AuditEntry,
    AuditPage,
    GrantView,
    InvitationDetail,
    InvitationPage,
    InvitationView,
    MemberView,
    PartnerSummary,
    PartnerView,
)


@contextlib.contextmanager
def refusals_as_application_errors() -> Iterator[None]:
    """A business refusal is final: retrying it would only refuse again."""
    try:
        yield
    except DomainError as err:
        raise ApplicationError(
            err.detail,
            err.extra,
            type=err.code.value,
            non_retryable=True,
            # An answer to the user, not a fault: no error log, no failure metric.
            category=ApplicationErrorCategory.BENIGN,
        ) from None


@dataclass(frozen=True)
class SendTicket:
    """What the mail activity needs to compose one send; None fields when nothing is to send."""

    closed: bool
    already_sent: bool
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


class PartnerStore:
    def __init__(
        self, pool: asyncpg.Pool, *, default_partner_limit: int, default_locale: Locale = Locale.PT_BR
    ) -> None:
        self._pool = pool
        self._default_partner_limit = default_partner_limit
        self._default_locale = default_locale

    @classmethod
    def from_settings(cls, pool: asyncpg.Pool, settings: Settings) -> PartnerStore:
        return cls(pool, default_partner_limit=settings.partner_limit, default_locale=settings.default_locale)

    # --- activities ----------------------------------------------------------------

    @activity.defn
    async def register_partner(self, input: RegisterPartnerInput) -> Registration:
        """R2 and R3 in one transaction, serialised per enterprise by its row lock."""
        with refusals_as_application_errors():
            registered = await self._register_partner(input)
        activity.logger.info("partner registered", extra={"partner_id": input.partner_id})
        count("partners_registered", "Partners registered (pending until their admin accepts).")
        return registered

    async def _register_partner(self, input: RegisterPartnerInput) -> Registration:
        partner = input.partner
        async with self._pool.acquire() as db, db.transaction():
            # A retry after a commit whose answer was lost finds its own partner.
            if await db.fetchval("SELECT 1 FROM partners WHERE id = $1", input.partner_id):
                return Registration(partner_id=input.partner_id, invitation_id=input.invitation_id)
            await db.execute(
                "INSERT INTO enterprises (id) VALUES ($1) ON CONFLICT (id) DO NOTHING",
                input.enterprise_id,
            )
            # The enterprise row lock makes concurrent registrations count one after another.
            enterprise = await db.fetchrow(
                "SELECT partner_limit, locale FROM enterprises WHERE id = $1 FOR UPDATE", input.enterprise_id
            )
            assert enterprise is not None
            limit = enterprise["partner_limit"]
            if limit is None:
                limit = self._default_partner_limit
            used = await db.fetchval(
                "SELECT count(*) FROM partners WHERE enterprise_id = $1 AND status <> 'deactivated'",
                input.enterprise_id,
            )
            if used >= limit:
                raise DomainError(
                    ErrorCode.PARTNER_LIMIT_REACHED,
                    f"The enterprise has {used} partners, its limit is {limit}.",
                    limit=limit,
                )
            taken = await db.fetch(
                "SELECT domain FROM partner_domains"
                " WHERE enterprise_id = $1 AND domain = ANY($2::text[]) AND NOT released"
                " ORDER BY domain",
                input.enterprise_id,
                partner.domains,
            )
            if taken:
                names = [r["domain"] for r in taken]
                raise DomainError(
                    ErrorCode.DOMAIN_TAKEN,
                    f"Already registered for another partner: {', '.join(names)}.",
                    domains=names,
                )
            await db.execute(
                "UPDATE enterprises SET display_name = coalesce($2, display_name),"
                " locale = coalesce($3, locale) WHERE id = $1",
                input.enterprise_id,
                partner.enterprise_name,
                partner.locale,
            )
            locale = partner.locale or enterprise["locale"] or self._default_locale
            await db.execute(
                "INSERT INTO partners (id, enterprise_id, name, status, created_by) VALUES ($1, $2, $3, 'pending', $4)",
                input.partner_id,
                input.enterprise_id,
                partner.name,
                input.actor,
            )
            await db.execute(
                "INSERT INTO partner_domains (partner_id, enterprise_id, domain) SELECT $1, $2, unnest($3::text[])",
                input.partner_id,
                input.enterprise_id,
                partner.domains,
            )
            await db.execute(
                "INSERT INTO invitations (id, partner_id, email, first_name, last_name, role,"
                " purpose, state, max_sends, invited_by, locale, workflow_id)"
                " VALUES ($1, $2, $3, $4, $5, 'admin', 'first_admin', 'pending', $6, $7, $8, $9)",
                input.invitation_id,
                input.partner_id,
                partner.admin.email,
                partner.admin.first_name,
                partner.admin.last_name,
                input.invitation_max_sends,
                input.actor,
                locale,
                input.invitation_workflow_id or invitation_workflow_id(input.invitation_id),
            )
            await _audit(
                db,
                input.enterprise_id,
                input.partner_id,
                input.actor,
                "partner_registered",
                name=partner.name,
                domains=partner.domains,
                admin=partner.admin.email,
                invitation_id=str(input.invitation_id),
            )
        return Registration(partner_id=input.partner_id, invitation_id=input.invitation_id)

    @activity.defn
    async def create_invitation(self, input: CreateInvitationInput) -> CreateInvitationOutput:
        """R5, R6 and R7 for an invitation of a partner that exists: one transaction."""
        with refusals_as_application_errors():
            return await self._create_invitation(input)

    async def _create_invitation(self, input: CreateInvitationInput) -> CreateInvitationOutput:
        new = input.invitation
        async with self._pool.acquire() as db, db.transaction():
            # The partner row lock serialises invitations of one partner.
            partner = await db.fetchrow(
                "SELECT p.enterprise_id, p.status, e.locale FROM partners p"
                " JOIN enterprises e ON e.id = p.enterprise_id WHERE p.id = $1 FOR UPDATE OF p",
                new.partner_id,
            )
            if partner is None:
                raise DomainError(ErrorCode.NOT_FOUND, "No such partner.")
            existing = await db.fetchval("SELECT purpose FROM invitations WHERE id = $1", input.invitation_id)
            if existing is not None:  # a retry after the commit
                return CreateInvitationOutput(
                    enterprise_id=partner["enterprise_id"], purpose=InvitationPurpose(existing)
                )
            purpose = new.purpose
            if new.role is Role.ADMIN:
                # R8 for an active partner; for a pending one, the first admin's invitation
                # is re-targeted: the new one activates the partner on acceptance (R4).
                _refuse_if_deactivated(partner["status"])
                pending_partner = partner["status"] == PartnerStatus.PENDING
                purpose = InvitationPurpose.FIRST_ADMIN if pending_partner else InvitationPurpose.ADMIN_REPLACEMENT
            else:
                _require_partner_status(partner["status"], PartnerStatus.ACTIVE)
            if new.purpose is InvitationPurpose.MEMBER and not await _is_active_admin(
                db, new.partner_id, new.invited_by
            ):
                raise DomainError(ErrorCode.FORBIDDEN, "Only the partner's Admin invites its members.")
            domains = [
                r["domain"]
                for r in await db.fetch(
                    "SELECT domain FROM partner_domains WHERE partner_id = $1 AND NOT released ORDER BY domain",
                    new.partner_id,
                )
            ]
            if not email_domain_is_registered(normalize_email(new.person.email), domains):
                raise DomainError(
                    ErrorCode.DOMAIN_NOT_REGISTERED,
                    "The e-mail domain is not one of the partner's domains.",
                    domains=domains,
                )
            if new.role is Role.ADMIN and await _is_active_admin(db, new.partner_id, new.person.email):
                raise DomainError(ErrorCode.ALREADY_ADMIN, "This person is already the partner's Admin.")
            if new.role is Role.MEMBER and await db.fetchval(
                "SELECT 1 FROM members WHERE partner_id = $1 AND email = $2 AND active",
                new.partner_id,
                new.person.email,
            ):
                raise DomainError(ErrorCode.ALREADY_MEMBER, "This person is already a member of the partner.")
            superseded: dict[UUID, str] = {}
            if new.role is Role.ADMIN:
                # R8: a newer admin invitation supersedes a pending one; its links stop now.
                superseded = {
                    r["id"]: r["workflow_id"]
                    for r in await db.fetch(
                        "UPDATE invitations SET state = 'superseded', closed_at = now(), next_send_at = NULL"
                        " WHERE partner_id = $1 AND role = 'admin' AND state = 'pending' RETURNING id, workflow_id",
                        new.partner_id,
                    )
                }
                for old in superseded:
                    await _audit(
                        db,
                        partner["enterprise_id"],
                        new.partner_id,
                        new.invited_by,
                        "invitation_superseded",
                        invitation_id=str(old),
                        by=str(input.invitation_id),
                    )
            pending = await db.fetchval(
                "SELECT id FROM invitations WHERE partner_id = $1 AND email = $2 AND state = 'pending'",
                new.partner_id,
                new.person.email,
            )
            if pending is not None:
                raise DomainError(
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
                new.person.email,
                new.person.first_name,
                new.person.last_name,
                new.role.value,
                purpose.value,
                input.max_sends,
                new.invited_by,
                new.locale or partner["locale"] or self._default_locale,
                invitation_workflow_id(input.invitation_id),
            )
            await _audit(
                db,
                partner["enterprise_id"],
                new.partner_id,
                new.invited_by,
                "invitation_created",
                invitation_id=str(input.invitation_id),
                email=new.person.email,
                role=new.role.value,
                purpose=purpose.value,
            )
        return CreateInvitationOutput(
            enterprise_id=partner["enterprise_id"],
            purpose=purpose,
            superseded=list(superseded),
            workflow_ids=superseded,
        )

    @activity.defn
    async def reopen_invitation(self, input: ReopenInvitationInput) -> ReopenInvitationOutput:
        """Revives an expired invitation for a new budget of sends; any other state stands."""
        with refusals_as_application_errors():
            async with self._pool.acquire() as db, db.transaction():
                row = await db.fetchrow(
                    "SELECT i.state, i.sends, i.email, i.partner_id, p.enterprise_id, p.status"
                    " FROM invitations i JOIN partners p ON p.id = i.partner_id"
                    " WHERE i.id = $1 FOR UPDATE OF i, p",
                    input.invitation_id,
                )
                if row is None:
                    raise DomainError(ErrorCode.NOT_FOUND, "No such invitation.")
                state = InvitationState(row["state"])
                if state is InvitationState.PENDING:
                    # Pending, yet no workflow answered for it (its onboarding was
                    # terminated by hand): this run takes it over.
                    await db.execute(
                        "UPDATE invitations SET workflow_id = $2 WHERE id = $1",
                        input.invitation_id,
                        invitation_workflow_id(input.invitation_id),
                    )
                if state is not InvitationState.EXPIRED:
                    return ReopenInvitationOutput(state=state, sends=row["sends"])
                _refuse_if_deactivated(row["status"])
                if await db.fetchval(
                    "SELECT 1 FROM invitations WHERE partner_id = $1 AND email = $2 AND state = 'pending'",
                    row["partner_id"],
                    row["email"],
                ):
                    raise DomainError(ErrorCode.ALREADY_INVITED, "A newer invitation for this address is pending.")
                await db.execute(
                    # A revived invitation runs in its own workflow, whichever ran it before.
                    "UPDATE invitations SET state = 'pending', closed_at = NULL, last_error = NULL, workflow_id = $2"
                    " WHERE id = $1",
                    input.invitation_id,
                    invitation_workflow_id(input.invitation_id),
                )
                await _audit(
                    db,
                    row["enterprise_id"],
                    row["partner_id"],
                    input.actor,
                    "invitation_revived",
                    invitation_id=str(input.invitation_id),
                    sends=row["sends"],
                )
        return ReopenInvitationOutput(state=InvitationState.PENDING, sends=row["sends"])

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
                raise ApplicationError("No such invitation", type="not_found", non_retryable=True)
            if row["state"] != InvitationState.PENDING:
                # Already decided, by this activity's earlier attempt or by another path.
                return AcceptInvitationOutput(
                    state=InvitationState(row["state"]),
                    partner_status=PartnerStatus(row["partner_status"]),
                )
            partner_status = PartnerStatus(row["partner_status"])
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
                    "UPDATE partners SET status = 'active', activated_at = now() WHERE id = $1",
                    row["partner_id"],
                )
                partner_status = PartnerStatus.ACTIVE
            await db.execute(
                "UPDATE invitations SET state = 'accepted', closed_at = now(), next_send_at = NULL WHERE id = $1",
                input.invitation_id,
            )
            await _audit(
                db,
                row["enterprise_id"],
                row["partner_id"],
                row["email"],
                "invitation_accepted",
                invitation_id=str(input.invitation_id),
                role=row["role"],
                send_number=input.send_number,
            )
            if partner_status is not PartnerStatus(row["partner_status"]):
                await _audit(db, row["enterprise_id"], row["partner_id"], row["email"], "partner_activated")
            if previous_admin is not None:
                await _audit(
                    db,
                    row["enterprise_id"],
                    row["partner_id"],
                    row["email"],
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
            await _audit(
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

    @activity.defn
    async def deactivate_partner(self, input: DeactivatePartnerInput) -> DeactivatePartnerOutput:
        """R10 in one transaction under the partner's row lock, the lock grants take too:
        a grant racing this either commits first (and this refuses) or is refused."""
        with refusals_as_application_errors():
            async with self._pool.acquire() as db, db.transaction():
                partner = await db.fetchrow(
                    "SELECT enterprise_id, status FROM partners WHERE id = $1 FOR UPDATE", input.partner_id
                )
                if partner is None:
                    raise DomainError(ErrorCode.NOT_FOUND, "No such partner.")
                if partner["status"] == PartnerStatus.DEACTIVATED:
                    return DeactivatePartnerOutput(newly_deactivated=False)
                apis = await db.fetch(
                    "SELECT ref, name FROM partner_grants"
                    " WHERE partner_id = $1 AND kind = 'api' AND revoked_at IS NULL ORDER BY ref",
                    input.partner_id,
                )
                if apis:
                    raise DomainError(
                        ErrorCode.API_ACCESS_GRANTED,
                        f"Revoke every API first: {', '.join(r['ref'] for r in apis)}.",
                        apis=[dict(r) for r in apis],
                    )
                await db.execute(
                    "UPDATE partners SET status = 'deactivated', deactivated_at = now() WHERE id = $1",
                    input.partner_id,
                )
                # The slot (R2) and the domains (R3) are free for a new partner.
                await db.execute("UPDATE partner_domains SET released = true WHERE partner_id = $1", input.partner_id)
                await db.execute("UPDATE members SET active = false WHERE partner_id = $1 AND active", input.partner_id)
                await db.execute(
                    "UPDATE partner_grants SET revoked_at = now(), revoked_by = $2"
                    " WHERE partner_id = $1 AND revoked_at IS NULL",
                    input.partner_id,
                    input.actor,
                )
                cancelled = {
                    r["id"]: r["workflow_id"]
                    for r in await db.fetch(
                        "UPDATE invitations SET state = 'cancelled', closed_at = now(), next_send_at = NULL,"
                        " last_error = 'partner deactivated' WHERE partner_id = $1 AND state = 'pending'"
                        " RETURNING id, workflow_id",
                        input.partner_id,
                    )
                }
                await _audit(
                    db,
                    partner["enterprise_id"],
                    input.partner_id,
                    input.actor,
                    "partner_deactivated",
                    cancelled_invitations=[str(i) for i in cancelled],
                )
        activity.logger.info("partner deactivated", extra={"partner_id": input.partner_id})
        count("partners_deactivated", "Partners deactivated.")
        return DeactivatePartnerOutput(
            newly_deactivated=True, cancelled_invitations=list(cancelled), workflow_ids=cancelled
        )

    # --- grants, logo: short writes of the API, under the partner's row lock ----------

    async def grant(self, partner_id: UUID, request: GrantRequest, actor: str) -> GrantView:
        async with self._pool.acquire() as db, db.transaction():
            partner = await _lock_partner(db, partner_id)
            if await db.fetchval(
                "SELECT 1 FROM partner_grants WHERE partner_id = $1 AND kind = $2 AND ref = $3 AND revoked_at IS NULL",
                partner_id,
                request.kind.value,
                request.ref,
            ):
                raise DomainError(ErrorCode.ALREADY_GRANTED, f"{request.kind.value} {request.ref} is already granted.")
            row = await db.fetchrow(
                f"INSERT INTO partner_grants (id, partner_id, kind, ref, name, granted_by)"  # noqa: S608 (constant)
                f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_GRANT_COLUMNS}",
                uuid4(),
                partner_id,
                request.kind.value,
                request.ref,
                request.name,
                actor,
            )
            assert row is not None
            await _audit(
                db, partner["enterprise_id"], partner_id, actor, "grant", kind=request.kind.value, ref=request.ref
            )
        return GrantView(**dict(row))

    async def revoke(self, partner_id: UUID, grant_id: UUID, actor: str) -> GrantView:
        async with self._pool.acquire() as db, db.transaction():
            partner = await _lock_partner(db, partner_id)
            row = await db.fetchrow(
                f"SELECT {_GRANT_COLUMNS} FROM partner_grants WHERE id = $1 AND partner_id = $2",  # noqa: S608
                grant_id,
                partner_id,
            )
            if row is None:
                raise DomainError(ErrorCode.NOT_FOUND, "No such grant of this partner.")
            if row["revoked_at"] is None:  # revoking twice answers the same, records once
                row = await db.fetchrow(
                    f"UPDATE partner_grants SET revoked_at = now(), revoked_by = $2"  # noqa: S608 (constant)
                    f" WHERE id = $1 RETURNING {_GRANT_COLUMNS}",
                    grant_id,
                    actor,
                )
                assert row is not None
                await _audit(
                    db, partner["enterprise_id"], partner_id, actor, "revoke", kind=row["kind"], ref=row["ref"]
                )
        return GrantView(**dict(row))

    async def set_logo(self, partner_id: UUID, logo: bytes, content_type: str, actor: str) -> None:
        async with self._pool.acquire() as db, db.transaction():
            partner = await _lock_partner(db, partner_id)
            await db.execute(
                "UPDATE partners SET logo = $2, logo_type = $3, logo_updated_at = now() WHERE id = $1",
                partner_id,
                logo,
                content_type,
            )
            await _audit(
                db, partner["enterprise_id"], partner_id, actor, "logo_set", content_type=content_type, size=len(logo)
            )

    async def get_logo(self, partner_id: UUID) -> tuple[bytes, str, datetime] | None:
        row = await self._pool.fetchrow(
            "SELECT logo, logo_type, logo_updated_at FROM partners WHERE id = $1 AND logo IS NOT NULL", partner_id
        )
        return None if row is None else (row["logo"], row["logo_type"], row["logo_updated_at"])

    async def audit(self, partner_id: UUID, *, limit: int, before: int | None) -> AuditPage:
        rows = await self._pool.fetch(
            "SELECT id, at, actor, action, details FROM audit_log"
            " WHERE partner_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
            partner_id,
            before,
            limit + 1,
        )
        entries = [AuditEntry(**dict(r)) for r in rows[:limit]]
        return AuditPage(entries=entries, next_before=entries[-1].id if len(rows) > limit else None)

    # --- the send ledger (steps of the mail activity) -----------------------------------

    async def begin_send(
        self,
        invitation_id: UUID,
        send_number: int,
        token_hash: bytes,
        next_send_at: datetime | None,
        expires_at: datetime,
    ) -> SendTicket:
        async with self._pool.acquire() as db, db.transaction():
            row = await db.fetchrow(
                "SELECT i.email, i.first_name, i.last_name, i.role, i.state, i.invited_by, i.locale, i.partner_id,"
                " p.logo IS NOT NULL AS has_logo,"
                " p.name AS partner_name, coalesce(e.display_name, e.id) AS enterprise_name"
                " FROM invitations i JOIN partners p ON p.id = i.partner_id"
                " JOIN enterprises e ON e.id = p.enterprise_id"
                " WHERE i.id = $1 FOR UPDATE OF i",
                invitation_id,
            )
            if row is None:
                raise ApplicationError("No such invitation", type="not_found", non_retryable=True)
            if row["state"] != InvitationState.PENDING:
                return SendTicket(closed=True, already_sent=False, state=InvitationState(row["state"]))
            status = await db.fetchval(
                "SELECT status FROM invitation_sends WHERE invitation_id = $1 AND send_number = $2",
                invitation_id,
                send_number,
            )
            if status == "sent":
                return SendTicket(closed=False, already_sent=True)
            await db.execute(
                "INSERT INTO invitation_sends (invitation_id, send_number, status)"
                " VALUES ($1, $2, 'sending') ON CONFLICT (invitation_id, send_number)"
                " DO UPDATE SET attempts = invitation_sends.attempts + 1",
                invitation_id,
                send_number,
            )
            await db.execute(
                "INSERT INTO invitation_tokens (token_hash, invitation_id, send_number) VALUES ($1, $2, $3)",
                token_hash,
                invitation_id,
                send_number,
            )
            await db.execute(
                "UPDATE invitations SET sends = greatest(sends, $2), next_send_at = $3, expires_at = $4 WHERE id = $1",
                invitation_id,
                send_number,
                next_send_at,
                expires_at,
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

    async def record_send_failure(self, failure: SendFailure) -> None:
        """Shown in the partner view while the mail is retried; cleared by the next success."""
        await self._pool.execute(
            "UPDATE invitations SET last_error = $2 WHERE id = $1 AND state = 'pending'",
            failure.invitation_id,
            failure.error,
        )

    async def finish_send(self, invitation_id: UUID, send_number: int, requested_by: str | None = None) -> None:
        async with self._pool.acquire() as db, db.transaction():
            row = await db.fetchrow(
                "UPDATE invitation_sends s SET status = 'sent', sent_at = now()"
                " FROM invitations i JOIN partners p ON p.id = i.partner_id"
                " WHERE s.invitation_id = $1 AND s.send_number = $2 AND i.id = s.invitation_id"
                " RETURNING p.enterprise_id, i.partner_id, s.attempts",
                invitation_id,
                send_number,
            )
            if row is None:
                return
            await db.execute(
                "UPDATE invitations SET last_error = NULL WHERE id = $1 AND state = 'pending'", invitation_id
            )
            await _audit(
                db,
                row["enterprise_id"],
                row["partner_id"],
                requested_by or "system",
                "invitation_resent" if requested_by else "invitation_sent",
                invitation_id=str(invitation_id),
                send_number=send_number,
                attempts=row["attempts"],
            )

    # --- reads for the API and the pages -------------------------------------------------

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def list_partners(self, enterprise_id: str) -> list[PartnerSummary]:
        rows = await self._pool.fetch(
            f"SELECT {_SUMMARY_COLUMNS} FROM partners p WHERE p.enterprise_id = $1"  # noqa: S608 (constant)
            " ORDER BY p.created_at, p.id",
            enterprise_id,
        )
        return [PartnerSummary(**dict(r)) for r in rows]

    async def get_partner(self, partner_id: UUID) -> PartnerView | None:
        async with (
            self._pool.acquire() as db,
            db.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await db.fetchrow(
                f"SELECT {_SUMMARY_COLUMNS}, p.activated_at, p.deactivated_at, p.logo IS NOT NULL AS has_logo"  # noqa: S608
                " FROM partners p WHERE p.id = $1",
                partner_id,
            )
            if row is None:
                return None
            members = [
                MemberView(**dict(r))
                for r in await db.fetch(
                    "SELECT first_name, last_name, email, role, joined_at FROM members"
                    " WHERE partner_id = $1 AND active ORDER BY joined_at, email",
                    partner_id,
                )
            ]
            invitations = [
                InvitationView(**dict(r))
                for r in await db.fetch(
                    f"SELECT {_INVITATION_COLUMNS} FROM invitations i"  # noqa: S608 (constant)
                    " WHERE i.partner_id = $1 ORDER BY i.created_at, i.id",
                    partner_id,
                )
            ]
            grants = [
                GrantView(**dict(r))
                for r in await db.fetch(
                    f"SELECT {_GRANT_COLUMNS} FROM partner_grants"  # noqa: S608 (constant)
                    " WHERE partner_id = $1 AND revoked_at IS NULL ORDER BY granted_at, ref",
                    partner_id,
                )
            ]
        admin_invitation = next((i for i in reversed(invitations) if i.role is Role.ADMIN), None)
        admin_replacement = next(
            (i for i in reversed(invitations) if i.purpose is InvitationPurpose.ADMIN_REPLACEMENT), None
        )
        admin = next((m for m in members if m.role is Role.ADMIN), None)
        admin_view: AdminView | None = None
        if admin is not None:
            admin_view = AdminView(
                first_name=admin.first_name,
                last_name=admin.last_name,
                email=admin.email,
                status="active",
            )
        elif admin_invitation is not None and row["status"] == PartnerStatus.PENDING:
            admin_view = AdminView(
                first_name=admin_invitation.first_name,
                last_name=admin_invitation.last_name,
                email=admin_invitation.email,
                status="invited",
            )
        return PartnerView(
            **dict(row),
            admin=admin_view,
            admin_invitation=admin_invitation,
            admin_replacement=admin_replacement,
            members=members,
            invitations=invitations,
            grants=grants,
        )

    async def is_active_admin(self, partner_id: UUID, email: str) -> bool:
        async with self._pool.acquire() as db:
            return await _is_active_admin(db, partner_id, email)

    async def get_invitation(self, invitation_id: UUID) -> InvitationDetail | None:
        row = await self._pool.fetchrow(
            f"SELECT {_INVITATION_COLUMNS}, i.partner_id, p.enterprise_id, p.status AS partner_status"  # noqa: S608
            " FROM invitations i JOIN partners p ON p.id = i.partner_id WHERE i.id = $1",
            invitation_id,
        )
        return None if row is None else InvitationDetail(**dict(row))

    async def invitation_workflow(self, invitation_id: UUID) -> str | None:
        """The id of the workflow that runs the invitation (where its updates go)."""
        owner: str | None = await self._pool.fetchval(
            "SELECT workflow_id FROM invitations WHERE id = $1", invitation_id
        )
        return owner

    async def invitation_page(self, token_hash: bytes) -> InvitationPage | None:
        row = await self._pool.fetchrow(
            "SELECT i.id AS invitation_id, i.workflow_id, i.state, i.role, i.first_name, p.enterprise_id,"
            " coalesce(e.display_name, e.id) AS enterprise_name, p.name AS partner_name,"
            " i.partner_id, p.status AS partner_status, t.send_number, i.locale, p.logo IS NOT NULL AS has_logo"
            " FROM invitation_tokens t JOIN invitations i ON i.id = t.invitation_id"
            " JOIN partners p ON p.id = i.partner_id JOIN enterprises e ON e.id = p.enterprise_id"
            " WHERE t.token_hash = $1",
            token_hash,
        )
        return None if row is None else InvitationPage(**dict(row))


_INVITATION_COLUMNS = (
    "i.id, i.first_name, i.last_name, i.email, i.role, i.purpose, i.state, i.sends, i.max_sends,"
    " i.next_send_at, i.expires_at, i.last_error, i.locale, i.invited_by, i.created_at"
)

_SUMMARY_COLUMNS = (
    "p.id, p.enterprise_id, p.name, p.status, p.created_at,"
    " array(SELECT d.domain FROM partner_domains d WHERE d.partner_id = p.id ORDER BY d.domain)"
    " AS domains"
)


async def _audit(
    db: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
    enterprise_id: str,
    partner_id: UUID | None,
    actor: str,
    action: str,
    **details: Any,
) -> None:
    """R11: appended in the transaction of the change it records."""
    await db.execute(
        "INSERT INTO audit_log (enterprise_id, partner_id, actor, action, details) VALUES ($1, $2, $3, $4, $5)",
        enterprise_id,
        partner_id,
        actor,
        action,
        details,
    )


def _refuse_if_deactivated(status: str) -> None:
    """R10: after deactivation every operation on the partner is refused, saying why."""
    if status == PartnerStatus.DEACTIVATED:
        raise DomainError(ErrorCode.PARTNER_DEACTIVATED, "The partner is deactivated.")


def _require_partner_status(status: str, wanted: PartnerStatus) -> None:
    _refuse_if_deactivated(status)
    if status != wanted:
        raise DomainError(ErrorCode.PARTNER_NOT_ACTIVE, "The partner is not active yet.")


async def _is_active_admin(
    db: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, partner_id: UUID, email: str
) -> bool:
    """R5: the one Admin of a partner is who invites its members."""
    return bool(
        await db.fetchval(
            "SELECT 1 FROM members WHERE partner_id = $1 AND email = $2 AND role = 'admin' AND active",
            partner_id,
            email,
        )
    )


_GRANT_COLUMNS = "id, kind, ref, name, granted_by, granted_at, revoked_by, revoked_at"


async def _lock_partner(db: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, partner_id: UUID) -> asyncpg.Record:
    """The partner's row lock, taken by every write that deactivation must not race (R10)."""
    partner = await db.fetchrow("SELECT enterprise_id, status FROM partners WHERE id = $1 FOR UPDATE", partner_id)
    if partner is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such partner.")
    _refuse_if_deactivated(partner["status"])
    return partner
