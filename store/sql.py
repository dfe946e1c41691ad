"""SQL shared by the stores: the audit row, the partner's lock, and the checks that
several writes make inside their own transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias
from uuid import UUID, uuid4

import asyncpg

from partners.errors import ErrorCode, Refused
from partners.events import AuditAction, event_of
from partners.models import InvitationWorkflowRef, PartnerStatus, Role
from partners.rules import email_domain_is_registered, normalize_email

Db: TypeAlias = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


async def audit(
    db: Db, enterprise_id: str, partner_id: UUID | None, actor: str, action: AuditAction, **details: Any
) -> None:
    """R11: appended in the transaction of the change it records; R15: with its event."""
    await audit_all(db, enterprise_id, partner_id, actor, [(action, details)])


async def audit_all(
    db: Db,
    enterprise_id: str,
    partner_id: UUID | None,
    actor: str,
    entries: Sequence[tuple[AuditAction, dict[str, Any]]],
) -> None:
    """Several audited changes of one transaction by one actor, in order: two statements
    however many (each statement is a round trip, the transaction holds its locks
    meanwhile)."""
    actions, details = [action for action, _ in entries], [found for _, found in entries]
    events = [event for action, found in entries if (event := event_of(action, found)) is not None]
    # One writer of this enterprise's events at a time, to the commit: `seq` is then
    # commit order per enterprise, and the feed never skips a late commit. The lock is
    # taken by the first statement, before the second numbers the events.
    await db.execute(
        "WITH logged AS (INSERT INTO audit_log (enterprise_id, partner_id, actor, action, details)"
        " SELECT $1, $2, $3, action, details"
        " FROM unnest($4::text[], $5::jsonb[]) WITH ORDINALITY AS a(action, details, n)"
        " ORDER BY n)"
        " SELECT pg_advisory_xact_lock($6, hashtext($1)) WHERE $7",
        enterprise_id,
        partner_id,
        actor,
        actions,
        details,
        EVENTS_LOCK,
        bool(events),
    )
    if not events:
        return
    # Wakes the webhook deliveries waiting for events, at the commit.
    await db.execute(
        "WITH added AS (INSERT INTO events (id, type, enterprise_id, partner_id, data)"
        " SELECT id, type, $1, $2, data FROM unnest($3::text[], $4::text[], $5::jsonb[]) WITH ORDINALITY"
        " AS e(id, type, data, n) ORDER BY n)"
        " SELECT pg_notify('events', $1)",
        enterprise_id,
        partner_id,
        [f"evt_{uuid4().hex}" for _ in events],
        [event_type for event_type, _ in events],
        [data for _, data in events],
    )


# The first half of the advisory lock key (int4): the events of one enterprise.
EVENTS_LOCK = 72_468


def refuse_if_deactivated(status: str) -> None:
    """R10: after deactivation every operation on the partner is refused, saying why."""
    if status == PartnerStatus.DEACTIVATED:
        raise Refused(ErrorCode.PARTNER_DEACTIVATED, "The partner is deactivated.")


def refuse_if_suspended(status: str) -> None:
    """R23: while suspended, no one is invited, resent to or admitted."""
    if status == PartnerStatus.SUSPENDED:
        raise Refused(ErrorCode.PARTNER_SUSPENDED, "The partner's access is suspended by its account holder.")


def require_active(status: str) -> None:
    refuse_if_deactivated(status)
    refuse_if_suspended(status)
    if status != PartnerStatus.ACTIVE:
        raise Refused(ErrorCode.PARTNER_NOT_ACTIVE, "The partner is not active yet.")


# R2: the partners an enterprise ($1) has against its limit (pending, active and suspended).
PARTNERS_COUNTED = "(SELECT count(*) FROM partners WHERE enterprise_id = $1 AND status <> 'deactivated')"


async def lock_partner(db: Db, partner_id: UUID, enterprise_id: str | None = None) -> asyncpg.Record:
    """The partner's row lock, taken by every write that deactivation must not race (R10).
    Answers its enterprise, status and enterprise locale; refuses a deactivated one, and
    one of another enterprise than `enterprise_id` where the caller names one."""
    partner = await db.fetchrow(
        "SELECT p.enterprise_id, p.status, e.locale FROM partners p JOIN enterprises e ON e.id = p.enterprise_id"
        " WHERE p.id = $1 FOR UPDATE OF p",
        partner_id,
    )
    if partner is None or (enterprise_id is not None and partner["enterprise_id"] != enterprise_id):
        raise Refused(ErrorCode.NOT_FOUND, "No such partner.")
    refuse_if_deactivated(partner["status"])
    return partner


async def active_role(db: Db | asyncpg.Pool, partner_id: UUID, email: str) -> Role | None:
    """The person's role in the partner while their membership is active (R5, R12), else None."""
    role = await db.fetchval(
        "SELECT role FROM members WHERE partner_id = $1 AND email = $2 AND active", partner_id, email
    )
    return None if role is None else Role(role)


async def is_active_admin(db: Db, partner_id: UUID, email: str) -> bool:
    """R5: the one Admin of a partner is who invites its members."""
    return await active_role(db, partner_id, email) is Role.ADMIN


def require_registered_domain(email: str, domains: list[str]) -> None:
    """R6 for every invitation, the first admin's included."""
    if not email_domain_is_registered(normalize_email(email), domains):
        raise Refused(
            ErrorCode.DOMAIN_NOT_REGISTERED, "The e-mail domain is not one of the partner's domains.", domains=domains
        )


async def partner_domains(db: Db, partner_id: UUID) -> list[str]:
    rows = await db.fetch(
        "SELECT domain FROM partner_domains WHERE partner_id = $1 AND NOT released ORDER BY domain", partner_id
    )
    return [r["domain"] for r in rows]


async def close_pending_invitations(
    db: Db,
    partner_id: UUID,
    state: str,
    *,
    admin_only: bool = False,
    email: str | None = None,
    keep: UUID | None = None,
    reason: str | None = None,
) -> list[InvitationWorkflowRef]:
    """Closes a partner's pending invitations (only the admin ones, or only one person's)
    in this transaction (their links stop now) and answers the workflows that run them,
    to be told."""
    rows = await db.fetch(
        "UPDATE invitations SET state = $2, closed_at = now(), next_send_at = NULL,"
        " last_error = coalesce($5, last_error)"
        " WHERE partner_id = $1 AND state = 'pending' AND (NOT $3 OR role = 'admin') AND id IS DISTINCT FROM $4"
        " AND ($6::text IS NULL OR email = $6)"
        " RETURNING id, workflow_id",
        partner_id,
        state,
        admin_only,
        keep,
        reason,
        email,
    )
    return [InvitationWorkflowRef(invitation_id=r["id"], workflow_id=r["workflow_id"]) for r in rows]
