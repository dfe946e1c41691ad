"""ReadModel: what the API and the invitation pages show, read from PostgreSQL."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from partners.errors import ErrorCode, Refused
from partners.models import InvitationState, PartnerStatus, Role
from partners.views import (
    GRANT_COLUMNS,
    AdminView,
    AuditEntry,
    AuditPage,
    GrantView,
    InvitationDetail,
    InvitationLinkView,
    InvitationList,
    InvitationView,
    MemberView,
    PartnerSlots,
    PartnerSummary,
    PartnerView,
)
from store.memberships import active_members_of
from store.sql import PARTNERS_COUNTED


class ReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def mail_fault(self) -> str | None:
        """The newest permanent SMTP error on a pending invitation, if any: the relay
        refuses us (a 5xx at RCPT would have made it undeliverable), a configuration
        fault that holds every mail until fixed."""
        row = await self._pool.fetchrow(
            "SELECT last_error, count(*) OVER () AS held FROM invitations"
            " WHERE state = 'pending' AND last_error IS NOT NULL AND last_error ~ '^5[0-9][0-9] '"
            " ORDER BY created_at DESC LIMIT 1"
        )
        return None if row is None else f"{row['held']} invitation(s) held, last: {row['last_error']}"[:300]

    async def list_partners(self, enterprise_id: str) -> list[PartnerSummary]:
        rows = await self._pool.fetch(
            f"SELECT {_SUMMARY_COLUMNS} FROM partners p WHERE p.enterprise_id = $1"  # noqa: S608 (constant)
            " ORDER BY p.created_at, p.id",
            enterprise_id,
        )
        return [PartnerSummary(**dict(r)) for r in rows]

    async def enterprise_locale(self, enterprise_id: str) -> str | None:
        """The enterprise's language, where it chose one."""
        locale: str | None = await self._pool.fetchval("SELECT locale FROM enterprises WHERE id = $1", enterprise_id)
        return locale

    async def partner_slots(self, enterprise_id: str, default_limit: int) -> PartnerSlots:
        row = await self._pool.fetchrow(
            f"SELECT (SELECT partner_limit FROM enterprises WHERE id = $1) AS own, {PARTNERS_COUNTED} AS used",  # noqa: S608 (a constant)
            enterprise_id,
        )
        assert row is not None
        return PartnerSlots(used=row["used"], limit=default_limit if row["own"] is None else row["own"])

    async def standing(self, partner_id: UUID, email: str | None) -> tuple[PartnerSummary, Role | None] | None:
        """The partner and the role `email` holds in it while active: what every
        per-partner route authorises by, in one indexed statement (R1, R12)."""
        row = await self._pool.fetchrow(
            f"SELECT {_SUMMARY_COLUMNS},"  # noqa: S608 (constant)
            " (SELECT m.role FROM members m WHERE m.partner_id = p.id AND m.email = $2 AND m.active) AS actor_role"
            " FROM partners p WHERE p.id = $1",
            partner_id,
            email,
        )
        if row is None:
            return None
        found = dict(row)
        role = found.pop("actor_role")
        return PartnerSummary(**found), None if role is None else Role(role)

    async def get_partner(self, partner_id: UUID) -> PartnerView | None:
        """The partner as its account holder sees it, bounded whatever its past: the
        pending invitations only (the newest PENDING_SHOWN), a count per state, and the
        latest admin and replacement invitations; the paged list holds every one."""
        # One statement, so one snapshot: the partner, its members, invitations and
        # grants agree without a transaction (one round trip instead of six).
        row = await self._pool.fetchrow(
            f"SELECT {_SUMMARY_COLUMNS}, p.activated_at, p.deactivated_at, p.logo IS NOT NULL AS has_logo,"  # noqa: S608
            f" array({active_members_of('p.id', as_rows=True)}) AS members,"
            f" array(SELECT ROW({_INVITATION_COLUMNS}) FROM invitations i"
            "  WHERE i.partner_id = p.id AND i.state = 'pending'"
            f"  ORDER BY i.created_at DESC, i.id DESC LIMIT {PENDING_SHOWN}) AS invitations,"
            " (SELECT coalesce(jsonb_object_agg(state, n), '{}'::jsonb) FROM"
            "  (SELECT state, count(*) AS n FROM invitations WHERE partner_id = p.id GROUP BY state) c)"
            "  AS invitation_counts,"
            f" array(SELECT ROW({_INVITATION_COLUMNS}) FROM invitations i WHERE i.partner_id = p.id"
            "  AND i.role = 'admin' ORDER BY i.created_at DESC, i.id DESC LIMIT 1) AS admin_invitation,"
            f" array(SELECT ROW({_INVITATION_COLUMNS}) FROM invitations i WHERE i.partner_id = p.id"
            "  AND i.purpose = 'admin_replacement' ORDER BY i.created_at DESC, i.id DESC LIMIT 1) AS admin_replacement,"
            f" array(SELECT ROW({GRANT_COLUMNS}) FROM partner_grants"
            "  WHERE partner_id = p.id AND revoked_at IS NULL ORDER BY granted_at, ref) AS grants"
            " FROM partners p WHERE p.id = $1",
            partner_id,
        )
        if row is None:
            return None
        found = dict(row)
        members = _views(MemberView, found.pop("members"))
        invitations = _views(InvitationView, found.pop("invitations"))
        grants = _views(GrantView, found.pop("grants"))
        admin_invitation = next(iter(_views(InvitationView, found.pop("admin_invitation"))), None)
        admin_replacement = next(iter(_views(InvitationView, found.pop("admin_replacement"))), None)
        admin = next((m for m in members if m.role is Role.ADMIN), None)
        admin_view: AdminView | None = None
        if admin is not None:
            admin_view = AdminView(
                first_name=admin.first_name,
                last_name=admin.last_name,
                email=admin.email,
                status="active",
            )
        elif admin_invitation is not None and found["status"] in (PartnerStatus.PENDING, PartnerStatus.SUSPENDED):
            admin_view = AdminView(
                first_name=admin_invitation.first_name,
                last_name=admin_invitation.last_name,
                email=admin_invitation.email,
                status="invited",
            )
        return PartnerView(
            **found,
            admin=admin_view,
            admin_invitation=admin_invitation,
            admin_replacement=admin_replacement,
            members=members,
            invitations=invitations,
            grants=grants,
        )

    async def get_invitation(self, invitation_id: UUID) -> InvitationDetail | None:
        row = await self._pool.fetchrow(
            f"SELECT {_INVITATION_COLUMNS}, p.enterprise_id, p.status AS partner_status"  # noqa: S608
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

    async def invitation_page(self, token_hash: bytes) -> InvitationLinkView | None:
        row = await self._pool.fetchrow(
            # R7: a link of a period before a revival belongs to an expired invitation, and
            # past its expiry an invitation is expired where its link is used, even before
            # its workflow's timer (worker down, a mail still retrying) has recorded it.
            "SELECT i.id AS invitation_id, i.workflow_id, i.role, i.first_name, i.email, p.enterprise_id,"
            " CASE WHEN t.send_number < i.live_from_send"
            " OR (i.state = 'pending' AND i.expires_at <= now()) THEN 'expired' ELSE i.state END AS state,"
            " coalesce(e.display_name, e.id) AS enterprise_name, p.name AS partner_name,"
            " i.partner_id, p.status AS partner_status, t.send_number, i.locale, p.logo IS NOT NULL AS has_logo"
            " FROM invitation_tokens t JOIN invitations i ON i.id = t.invitation_id"
            " JOIN partners p ON p.id = i.partner_id JOIN enterprises e ON e.id = p.enterprise_id"
            " WHERE t.token_hash = $1",
            token_hash,
        )
        return None if row is None else InvitationLinkView(**dict(row))

    async def invitations(
        self,
        *,
        partner_id: UUID | None = None,
        enterprise_id: str | None = None,
        state: InvitationState | None,
        limit: int,
        cursor: str | None,
    ) -> InvitationList:
        """A partner's or an enterprise's invitations, newest first, a page at a time: the
        cursor is the last one's (created_at, id), so a page never repeats or skips a row
        whatever was created meanwhile."""
        after = _decode_cursor(cursor) if cursor else None
        scope = (
            "i.partner_id = $1" if partner_id else "i.partner_id IN (SELECT id FROM partners WHERE enterprise_id = $1)"
        )
        rows = await self._pool.fetch(
            f"SELECT {_INVITATION_COLUMNS} FROM invitations i WHERE {scope}"  # noqa: S608 (constants)
            " AND ($2::text IS NULL OR i.state = $2)"
            " AND ($3::timestamptz IS NULL OR (i.created_at, i.id) < ($3, $4::uuid))"
            " ORDER BY i.created_at DESC, i.id DESC LIMIT $5",
            partner_id or enterprise_id,
            state.value if state else None,
            after[0] if after else None,
            after[1] if after else None,
            limit + 1,
        )
        page = [InvitationView(**dict(r)) for r in rows[:limit]]
        more = len(rows) > limit
        return InvitationList(invitations=page, next_cursor=_encode_cursor(page[-1]) if more else None)

    async def get_logo(self, partner_id: UUID) -> tuple[bytes, str, datetime] | None:
        row = await self._pool.fetchrow(
            "SELECT logo, logo_type, logo_updated_at FROM partners WHERE id = $1 AND logo IS NOT NULL", partner_id
        )
        return None if row is None else (row["logo"], row["logo_type"], row["logo_updated_at"])

    async def audit(self, partner_id: UUID, *, limit: int, before: int | None) -> AuditPage:
        # Who each entry is about (its invitee or member) and their names, where the partner
        # still knows them: what the console's history says in words.
        rows = await self._pool.fetch(
            "SELECT a.id, a.at, a.actor, a.action, a.details,"  # noqa: S608 (constants)
            f" {_NAME_OF.format(email='a.actor')} AS actor_name, t.about,"
            f" {_NAME_OF.format(email='t.about')} AS about_name"
            " FROM audit_log a"
            " LEFT JOIN invitations i ON i.id = CASE WHEN a.details->>'invitation_id' ~ '^[0-9a-f-]{36}$'"
            "  THEN (a.details->>'invitation_id')::uuid END"
            " CROSS JOIN LATERAL (SELECT coalesce(a.details->>'email', i.email, a.details->>'new_admin') AS about) t"
            " WHERE a.partner_id = $1 AND ($2::bigint IS NULL OR a.id < $2) ORDER BY a.id DESC LIMIT $3",
            partner_id,
            before,
            limit + 1,
        )
        entries = [AuditEntry(**dict(r)) for r in rows[:limit]]
        return AuditPage(entries=entries, next_before=entries[-1].id if len(rows) > limit else None)


# A person's name as the partner knows it (its membership, else its latest invitation).
_NAME_OF = (
    "coalesce((SELECT nullif(trim(m.first_name || ' ' || m.last_name), '') FROM members m"
    " WHERE m.partner_id = a.partner_id AND m.email = {email} ORDER BY m.joined_at DESC LIMIT 1),"
    " (SELECT nullif(trim(n.first_name || ' ' || n.last_name), '') FROM invitations n"
    " WHERE n.partner_id = a.partner_id AND n.email = {email} ORDER BY n.created_at DESC LIMIT 1))"
)

_INVITATION_COLUMNS = ", ".join(f"i.{name}" for name in InvitationView.model_fields)

# The pending invitations a partner's view shows; the paged list holds the rest.
PENDING_SHOWN = 50

_SUMMARY_COLUMNS = (
    "p.id, p.enterprise_id, p.name, p.status, p.created_at, p.suspended_at, p.suspended_reason AS suspension_reason,"
    " array(SELECT d.domain FROM partner_domains d WHERE d.partner_id = p.id ORDER BY d.domain)"
    " AS domains"
)


def _encode_cursor(last: InvitationView) -> str:
    return base64.urlsafe_b64encode(f"{last.created_at.isoformat()}|{last.id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        at, _, id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition("|")
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("naive")
        return when, UUID(id)
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise Refused(ErrorCode.INVALID_INPUT, "cursor: not a cursor this API answered.") from None


View = TypeVar("View", bound=BaseModel)


def _views(model: type[View], rows: list[tuple[Any, ...]]) -> list[View]:
    """Views of an array of ROW()s selected in the model's field order."""
    return [model(**dict(zip(model.model_fields, row, strict=True))) for row in rows]
