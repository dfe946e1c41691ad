"""GrantStore: the API's direct writes of a partner, grants (R9) and its logo, each under
the partner's row lock, the lock deactivation takes (R10)."""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg

from partners.errors import ErrorCode, Refused
from partners.events import AuditAction
from partners.requests import GrantRequest
from partners.views import GRANT_COLUMNS, GrantView
from store.sql import Db, audit, lock_partner


class GrantStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def grant(self, partner_id: UUID, request: GrantRequest, actor: str) -> GrantView:
        async with self._pool.acquire() as db, db.transaction():
            partner = await lock_partner(db, partner_id)
            if await db.fetchval(
                "SELECT 1 FROM partner_grants WHERE partner_id = $1 AND kind = $2 AND ref = $3 AND revoked_at IS NULL",
                partner_id,
                request.kind.value,
                request.ref,
            ):
                raise Refused(ErrorCode.ALREADY_GRANTED, f"{request.kind.value} {request.ref} is already granted.")
            row = await db.fetchrow(
                f"INSERT INTO partner_grants (id, partner_id, kind, ref, name, granted_by)"  # noqa: S608 (constant)
                f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {GRANT_COLUMNS}",
                uuid4(),
                partner_id,
                request.kind.value,
                request.ref,
                request.name,
                actor,
            )
            assert row is not None
            await _audited(db, partner["enterprise_id"], partner_id, actor, AuditAction.GRANT, row)
        return GrantView(**dict(row))

    async def revoke(self, partner_id: UUID, grant_id: UUID, actor: str) -> GrantView:
        async with self._pool.acquire() as db, db.transaction():
            partner = await lock_partner(db, partner_id)
            row = await db.fetchrow(
                f"SELECT {GRANT_COLUMNS} FROM partner_grants WHERE id = $1 AND partner_id = $2",  # noqa: S608
                grant_id,
                partner_id,
            )
            if row is None:
                raise Refused(ErrorCode.NOT_FOUND, "No such grant of this partner.")
            if row["revoked_at"] is None:  # revoking twice answers the same, records once
                row = await db.fetchrow(
                    f"UPDATE partner_grants SET revoked_at = now(), revoked_by = $2"  # noqa: S608 (constant)
                    f" WHERE id = $1 RETURNING {GRANT_COLUMNS}",
                    grant_id,
                    actor,
                )
                assert row is not None
                await _audited(db, partner["enterprise_id"], partner_id, actor, AuditAction.REVOKE, row)
        return GrantView(**dict(row))

    async def set_logo(self, partner_id: UUID, logo: bytes, content_type: str, actor: str) -> None:
        async with self._pool.acquire() as db, db.transaction():
            partner = await lock_partner(db, partner_id)
            await db.execute(
                "UPDATE partners SET logo = $2, logo_type = $3, logo_updated_at = now() WHERE id = $1",
                partner_id,
                logo,
                content_type,
            )
            await audit(
                db,
                partner["enterprise_id"],
                partner_id,
                actor,
                AuditAction.LOGO_SET,
                content_type=content_type,
                size=len(logo),
            )


async def _audited(
    db: Db, enterprise_id: str, partner_id: UUID, actor: str, action: AuditAction, grant: asyncpg.Record
) -> None:
    """The audit row (and event) of a grant or its revocation."""
    details = {"grant_id": str(grant["id"]), "kind": grant["kind"], "ref": grant["ref"]}
    await audit(db, enterprise_id, partner_id, actor, action, **details)
