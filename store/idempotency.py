"""IdempotencyKeys: a registration's Idempotency-Key, remembered in PostgreSQL.

A retry with the same key and the same body answers with the same partner; the same key
with another body is refused (422 `idempotency_key_reused`): it is a client's bug, and
answering with the first partner would hide it. After `window_seconds` a key is free
again and registers a partner of its own.
"""

from __future__ import annotations

import time
import uuid
from uuid import UUID

import asyncpg

from partners.errors import ErrorCode, Refused

# Partner ids derived from an Idempotency-Key live in their own namespace.
IDEMPOTENCY_NAMESPACE = uuid.UUID("8f0b6c1e-3a55-4d6f-9a51-6e1d0b7c2a90")


def idempotent_partner_id(enterprise_id: str, key: str, generation: int) -> UUID:
    """The partner a key registers: the same for every retry, another once its window ran out."""
    name = f"{enterprise_id}\n{key}\n{generation}"
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, name)


class IdempotencyKeys:
    def __init__(self, pool: asyncpg.Pool, *, window_seconds: int) -> None:
        self._pool = pool
        self._window = window_seconds

    async def claim(self, enterprise_id: str, key: str, request_hash: bytes) -> int:
        """The key's generation for this request: a number of its own for each use of the
        key (the first, or one after its window ran out); the same as before for a retry of
        the same request."""
        # One statement: a new key is stored, an expired one taken over; a live one is
        # left as it is and read (a concurrent first use has committed it by then).
        claimed = await self._pool.fetchval(
            "INSERT INTO idempotency_keys AS k (enterprise_id, key, request_hash, generation) VALUES ($1, $2, $3, $5)"
            " ON CONFLICT (enterprise_id, key) DO UPDATE"
            " SET request_hash = EXCLUDED.request_hash, generation = EXCLUDED.generation, created_at = now()"
            " WHERE k.created_at <= now() - make_interval(secs => $4)"
            " RETURNING generation",
            enterprise_id,
            key,
            request_hash,
            self._window,
            # Unique to this use of the key, whether an expired row is taken over or was
            # already pruned (R17): each use after the window registers a partner of its own.
            time.time_ns() // 1000,
        )
        if claimed is not None:
            return int(claimed)
        kept = await self._pool.fetchrow(
            "SELECT request_hash, generation FROM idempotency_keys WHERE enterprise_id = $1 AND key = $2",
            enterprise_id,
            key,
        )
        assert kept is not None  # the conflict above was with this row
        if bytes(kept["request_hash"]) != request_hash:
            raise Refused(
                ErrorCode.IDEMPOTENCY_KEY_REUSED,
                "This Idempotency-Key was used with another request in the last 24 hours; use a new key.",
            )
        return int(kept["generation"])
