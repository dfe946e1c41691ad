"""ReconcileReads (R25): what PostgreSQL holds that a workflow must run, for `partners
reconcile`; and each repair, audited as whoever asked for it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from partners.events import AuditAction
from store.sql import audit


class ReconcileReads:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def pending_invitations(self, enterprise_id: str | None) -> list[dict[str, Any]]:
        """Every pending invitation (of one enterprise), with what a run that takes it over needs."""
        rows = await self._pool.fetch(
            "SELECT i.id, i.workflow_id, i.partner_id, p.enterprise_id, i.purpose, i.email"
            " FROM invitations i JOIN partners p ON p.id = i.partner_id"
            " WHERE i.state = 'pending' AND ($1::text IS NULL OR p.enterprise_id = $1) ORDER BY i.created_at",
            enterprise_id,
        )
        return [dict(r) for r in rows]

    async def enabled_endpoints(self, enterprise_id: str | None) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT id, enterprise_id FROM webhook_endpoints WHERE status = 'enabled'"
            " AND ($1::text IS NULL OR enterprise_id = $1) ORDER BY created_at",
            enterprise_id,
        )
        return [dict(r) for r in rows]

    async def invitation_states(self, ids: list[UUID]) -> dict[UUID, tuple[str, str]]:
        """The state and workflow of each invitation that exists, by id."""
        rows = await self._pool.fetch("SELECT id, state, workflow_id FROM invitations WHERE id = ANY($1::uuid[])", ids)
        return {r["id"]: (r["state"], r["workflow_id"]) for r in rows}

    async def partners_found(self, ids: list[UUID]) -> set[UUID]:
        rows = await self._pool.fetch("SELECT id FROM partners WHERE id = ANY($1::uuid[])", ids)
        return {r["id"] for r in rows}

    async def audit_repair(
        self, enterprise_id: str, partner_id: UUID | None, actor: str, repair: str, **details: Any
    ) -> None:
        async with self._pool.acquire() as db, db.transaction():
            await audit(db, enterprise_id, partner_id, actor, AuditAction.RECONCILED, repair=repair, **details)
