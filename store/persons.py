"""PersonStore: one person's data on request (R16, LGPD art. 18): export and erasure.

Everything stored about an address: memberships, invitations, who resent what, who
granted or revoked what, audit entries and events naming them. Erasure ends the memberships and cancels the pending
invitations (under each partner's row lock, as a removal does), then replaces the name
and the address by one pseudonym wherever they are stored, audit rows included, so the
audit trail keeps its shape: the same pseudonym acts where the person acted.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import asyncpg

from partners.errors import ErrorCode, Refused
from partners.events import AuditAction
from partners.models import InvitationWorkflowRef, Role
from store.mail_quota import mailbox
from store.memberships import end_membership
from store.sql import Db, active_role, audit, close_pending_invitations, lock_partner

ERASED_FIRST_NAME, ERASED_LAST_NAME = "Erased", "Person"
# Columns that hold an actor's or a person's address: (table, column).
_ADDRESS_COLUMNS = (
    ("members", "email"),
    ("members", "ended_by"),
    ("invitations", "email"),
    ("invitations", "invited_by"),
    ("invitation_sends", "requested_by"),
    ("partners", "created_by"),
    ("audit_log", "actor"),
    ("webhook_endpoints", "created_by"),
    ("partner_grants", "granted_by"),
    ("partner_grants", "revoked_by"),
)


class PersonStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def export(self, email: str) -> dict[str, Any]:
        """Everything stored about `email`, as JSON-ready data (no token: only hashes are kept)."""
        async with self._pool.acquire() as db:
            return {
                "email": email,
                "memberships": await _rows(
                    db,
                    "SELECT m.partner_id, p.name AS partner_name, p.enterprise_id, m.email, m.first_name,"
                    " m.last_name, m.role, m.active, m.joined_at, m.ended_at, m.ended_by, m.end_reason"
                    " FROM members m JOIN partners p ON p.id = m.partner_id WHERE lower(m.email) = $1"
                    " ORDER BY m.joined_at",
                    email,
                ),
                "invitations": await _rows(
                    db,
                    "SELECT i.id, i.partner_id, p.name AS partner_name, i.email, i.first_name, i.last_name, i.role,"
                    " i.purpose, i.state, i.sends, i.invited_by, i.locale, i.created_at, i.closed_at, i.last_error"
                    " FROM invitations i JOIN partners p ON p.id = i.partner_id"
                    " WHERE lower(i.email) = $1 OR lower(i.invited_by) = $1 ORDER BY i.created_at",
                    email,
                ),
                "resends_requested": await _rows(
                    db,
                    "SELECT invitation_id, send_number, created_at FROM invitation_sends"
                    " WHERE lower(requested_by) = $1 ORDER BY created_at",
                    email,
                ),
                "grants_made": await _rows(
                    db,
                    "SELECT id, partner_id, kind, ref, name, granted_by, granted_at, revoked_by, revoked_at"
                    " FROM partner_grants WHERE lower(granted_by) = $1 OR lower(revoked_by) = $1 ORDER BY granted_at",
                    email,
                ),
                "audit_entries": await _rows(
                    db,
                    "SELECT id, at, enterprise_id, partner_id, actor, action, details FROM audit_log"
                    " WHERE lower(actor) = $1 OR strpos(lower(details::text), $2) > 0 ORDER BY id",
                    email,
                    json.dumps(email),
                ),
                "events": await _rows(
                    db,
                    "SELECT id, type, created_at, enterprise_id, partner_id, data FROM events"
                    " WHERE strpos(lower(data::text), $1) > 0 ORDER BY seq",
                    json.dumps(email),
                ),
                "suppressions": await _rows(
                    db,
                    "SELECT mailbox, reason, invitation_id, created_at FROM suppressions WHERE mailbox = $1",
                    mailbox(email),
                ),
            }

    async def erase(self, email: str, actor: str) -> tuple[dict[str, Any], list[InvitationWorkflowRef]]:
        """Refused while `email` is the active Admin of a partner (replace them first).
        Answers what was done (with the pseudonym) and the invitations cancelled, whose
        workflows the caller tells."""
        pseudonym = f"erased-{uuid4().hex[:16]}@erased.invalid"
        async with self._pool.acquire() as db, db.transaction():
            touched = await db.fetch(
                "SELECT DISTINCT partner_id FROM ("
                " SELECT partner_id FROM members WHERE lower(email) = $1 AND active"
                " UNION SELECT partner_id FROM invitations WHERE lower(email) = $1 AND state = 'pending') t"
                " ORDER BY partner_id",  # one lock order for every erasure
                email,
            )
            ended, cancelled = 0, list[InvitationWorkflowRef]()
            for row in touched:
                partner_id = row["partner_id"]
                partner = await lock_partner(db, partner_id)
                role = await active_role(db, partner_id, email)
                if role is Role.ADMIN:
                    raise Refused(
                        ErrorCode.PERSON_IS_ADMIN,
                        "This person is the active Admin of a partner: replace them first, then erase.",
                        partner_id=str(partner_id),
                    )
                if role is None:  # invited only
                    cancelled += await close_pending_invitations(
                        db, partner_id, "cancelled", email=email, reason="person erased"
                    )
                    continue
                # The audit row names the address; it is replaced below with every other mention.
                _, closed = await end_membership(
                    db, partner["enterprise_id"], partner_id, email, actor=actor, reason="erased"
                )
                cancelled += closed
                ended += 1
            enterprises = await _pseudonymise(db, email, pseudonym)
            # R24: the complaint goes too; the person asked to be forgotten, and a mailbox
            # kept to refuse it would be their address kept (docs/operations.md says so).
            await db.execute("DELETE FROM suppressions WHERE mailbox = $1", mailbox(email))
            for enterprise_id in enterprises:
                await audit(
                    db,
                    enterprise_id,
                    None,
                    actor,
                    AuditAction.PERSON_ERASED,
                    pseudonym=pseudonym,
                    memberships_ended=ended,
                )
        done = {
            "pseudonym": pseudonym,
            "memberships_ended": ended,
            "invitations_cancelled": [str(c.invitation_id) for c in cancelled],
            "enterprises": sorted(enterprises),
        }
        return done, cancelled


async def _pseudonymise(db: Db, email: str, pseudonym: str) -> set[str]:
    """Replaces the address (and, beside it, the name) everywhere; answers the
    enterprises whose data named the person."""
    enterprises = {
        r["enterprise_id"]
        for r in await db.fetch(
            "SELECT p.enterprise_id FROM partners p WHERE p.id IN (SELECT partner_id FROM members"
            " WHERE lower(email) = $1 UNION SELECT partner_id FROM invitations WHERE lower(email) = $1)"
            " UNION SELECT enterprise_id FROM audit_log WHERE lower(actor) = $1"
            " UNION SELECT p.enterprise_id FROM partner_grants g JOIN partners p ON p.id = g.partner_id"
            " WHERE lower(g.granted_by) = $1 OR lower(g.revoked_by) = $1",
            email,
        )
    }
    for table in ("members", "invitations"):
        await db.execute(
            f"UPDATE {table} SET first_name = $2, last_name = $3 WHERE lower(email) = $1",  # noqa: S608 (constant)
            email,
            ERASED_FIRST_NAME,
            ERASED_LAST_NAME,
        )
    for table, column in _ADDRESS_COLUMNS:
        await db.execute(
            f"UPDATE {table} SET {column} = $2 WHERE lower({column}) = $1",  # noqa: S608 (constant names)
            email,
            pseudonym,
        )
    quoted = json.dumps(email)
    for table, key, column in (("audit_log", "id", "details"), ("events", "seq", "data")):
        rows = await db.fetch(
            f"SELECT {key} AS key, {column} AS doc, enterprise_id FROM {table}"  # noqa: S608 (constant names)
            f" WHERE strpos(lower({column}::text), $1) > 0",
            quoted,
        )
        for row in rows:
            enterprises.add(row["enterprise_id"])
            await db.execute(
                f"UPDATE {table} SET {column} = $2 WHERE {key} = $1",  # noqa: S608 (constant names)
                row["key"],
                _replaced(row["doc"], email, pseudonym),
            )
    return enterprises


def _replaced(node: Any, email: str, pseudonym: str) -> Any:
    """The JSON document with every string equal to the address (any case) replaced."""
    if isinstance(node, dict):
        return {k: _replaced(v, email, pseudonym) for k, v in node.items()}
    if isinstance(node, list):
        return [_replaced(v, email, pseudonym) for v in node]
    if isinstance(node, str) and node.lower() == email:
        return pseudonym
    return node


async def _rows(db: Db, query: str, *args: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch(query, *args)]
