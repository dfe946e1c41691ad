"""AccessReads: what a signed-in person may use (R14), on the portal's request path.

Only an active membership of an active partner grants anything, and only what is granted
to that partner and not revoked. One indexed query per call (members_by_email,
partner_grants_active): the portal asks on every page it serves.
"""

from __future__ import annotations

import asyncpg

from partners.models import GrantKind, PartnerStatus
from partners.views import Access, AccessCheck, Membership


class AccessReads:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def access(self, email: str, *, suspended_too: bool = False) -> Access:
        """`suspended_too`: also the memberships of suspended partners, granting nothing
        (R23), for the console, where their people read that access is paused."""
        rows = await self._pool.fetch(
            "SELECT m.partner_id, p.name AS partner_name, p.enterprise_id, m.role, p.status AS partner_status,"  # noqa: S608 (constants)
            f" {_GRANTED.format(kind='product')} AS products, {_GRANTED.format(kind='api')} AS apis"
            " FROM members m JOIN partners p ON p.id = m.partner_id"
            " AND (p.status = 'active' OR ($2 AND p.status = 'suspended'))"
            " WHERE m.email = $1 AND m.active ORDER BY p.name, m.partner_id",
            email,
            suspended_too,
        )
        memberships = [Membership(**dict(r)) for r in rows]
        for m in memberships:
            if m.partner_status is PartnerStatus.SUSPENDED:
                m.products, m.apis = [], []
        return Access(email=email, memberships=memberships)

    async def check(self, email: str, enterprise_id: str, kind: GrantKind, ref: str) -> AccessCheck:
        """Whether a membership of the person in a partner of `enterprise_id`, the owner of
        the catalog that asks, grants `ref`; the one that does (the partner where they are
        Admin first). A ref is the account holder's own text: another enterprise may
        grant the same one to its partners, which opens nothing here (R21)."""
        row = await self._pool.fetchrow(
            "SELECT m.partner_id, m.role FROM members m"
            " JOIN partners p ON p.id = m.partner_id AND p.status = 'active' AND p.enterprise_id = $4"
            " JOIN partner_grants g ON g.partner_id = m.partner_id AND g.kind = $2 AND g.ref = $3"
            " AND g.revoked_at IS NULL"
            " WHERE m.email = $1 AND m.active ORDER BY m.role = 'admin' DESC, p.name, m.partner_id LIMIT 1",
            email,
            kind.value,
            ref,
            enterprise_id,
        )
        if row is None:
            return AccessCheck(allowed=False)
        return AccessCheck(allowed=True, partner_id=row["partner_id"], role=row["role"])


# What is granted to the membership's partner and not revoked, of one kind (a constant).
_GRANTED = (
    "coalesce((SELECT jsonb_agg(jsonb_build_object('ref', g.ref, 'name', g.name) ORDER BY g.ref)"
    " FROM partner_grants g WHERE g.partner_id = m.partner_id AND g.kind = '{kind}'"
    " AND g.revoked_at IS NULL), '[]'::jsonb)"
)
