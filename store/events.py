"""EventStore: the event feed (R15) and the enterprise's webhook endpoints.

Endpoint administration is audited but is no event. A secret is `whsec_` and 32 random
bytes in base64, as the Standard Webhooks specification shapes it; after a rotation the
old one signs beside the new one for 24 hours, and is cleared after. Secrets are stored
sealed with the payload keys (AES-256-GCM, bound to their endpoint), the key id beside.
"""

from __future__ import annotations

import base64
import logging
import secrets
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from partners import destinations
from partners.codec import EncryptionCodec, PayloadKeyError
from partners.errors import ErrorCode, Refused
from partners.events import AuditAction
from partners.views import DeliveryList, DeliveryView, EventPage, EventView, WebhookView
from store.sql import EVENTS_LOCK, Db, audit

log = logging.getLogger(__name__)

ROTATION_OVERLAP = "24 hours"
# The portal-wide endpoint of the settings (PORTAL_WEBHOOK_URL): one row, this id.
PORTAL_ENDPOINT_ID = UUID("5d1c0a52-7f59-4b0e-9c55-1f3a0c6f4e01")
_ENDPOINT_COLUMNS = (
    "id, enterprise_id, url, coalesce(event_types, ARRAY['*']) AS events, status, created_at, disabled_at,"
    " disabled_reason, CASE WHEN previous_expires_at > now() THEN previous_expires_at END AS previous_secret_expires_at"
)


async def clear_ended_overlaps(db: Db | asyncpg.Pool, endpoint_id: UUID | None = None) -> None:
    """Forgets the previous secrets whose 24 h overlap ended: of one endpoint, or of all."""
    await db.execute(
        "UPDATE webhook_endpoints SET previous_secret = NULL, previous_key_id = NULL, previous_expires_at = NULL"
        " WHERE previous_expires_at <= now() AND ($1::uuid IS NULL OR id = $1)",
        endpoint_id,
    )


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def seal_secret(codec: EncryptionCodec, endpoint_id: UUID, secret: str) -> tuple[str, str]:
    """The secret as stored: the key id, and nonce and ciphertext in base64, bound to the endpoint."""
    kid, sealed = codec.seal(secret.encode(), endpoint_id.bytes)
    return kid, base64.b64encode(sealed).decode()


def unseal_secret(codec: EncryptionCodec, endpoint_id: UUID, kid: str, stored: str) -> str:
    return codec.unseal(kid, base64.b64decode(stored), endpoint_id.bytes).decode()


class EventStore:
    def __init__(self, pool: asyncpg.Pool, codec: EncryptionCodec, *, endpoint_limit: int = 10) -> None:
        """`codec`: the payload keys, which seal the signing secrets at rest."""
        self._pool = pool
        self._codec = codec
        self._endpoint_limit = endpoint_limit

    async def feed(self, enterprise_id: str, *, after: int, limit: int) -> EventPage:
        """The events after the cursor; 410 `cursor_expired` where events after it were
        pruned (R17): the reader learns it missed some, and resyncs from `after=0`, the
        oldest kept. One snapshot for both reads, so a prune between them hides nothing."""
        async with self._pool.acquire() as db, db.transaction(isolation="repeatable_read", readonly=True):
            horizon = await db.fetchval(
                "SELECT pruned_through FROM event_horizons WHERE enterprise_id = $1", enterprise_id
            )
            if after and horizon is not None and after < horizon:
                raise Refused(
                    ErrorCode.CURSOR_EXPIRED,
                    "Events after this cursor are past their retention and were removed;"
                    " read again from after=0, the oldest event kept.",
                    pruned_through=str(horizon),
                )
            rows = await db.fetch(
                "SELECT seq, id, type, created_at, enterprise_id, partner_id, data FROM events"
                " WHERE enterprise_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                enterprise_id,
                after,
                limit,
            )
        events = [EventView(**{k: v for k, v in dict(r).items() if k != "seq"}) for r in rows]
        return EventPage(events=events, next_cursor=str(rows[-1]["seq"] if rows else after))

    async def create_endpoint(
        self, enterprise_id: str, url: str, events: list[str] | None, actor: str
    ) -> tuple[WebhookView, str]:
        """A new endpoint receives the events committed after it. An enterprise has at most
        `endpoint_limit` endpoints and one per URL: each endpoint POSTs every event once,
        so two on one URL would double what a third party receives."""
        secret = new_secret()
        async with self._pool.acquire() as db, db.transaction():
            # Serialises the enterprise's creations: the count below stays true to commit.
            await db.execute("SELECT pg_advisory_xact_lock(hashtextextended('webhooks:' || $1, 0))", enterprise_id)
            kept = await db.fetchval(
                "SELECT count(*) FROM webhook_endpoints WHERE enterprise_id = $1 AND status <> 'deleted'",
                enterprise_id,
            )
            if kept >= self._endpoint_limit:
                raise Refused(
                    ErrorCode.WEBHOOK_LIMIT_REACHED,
                    f"The enterprise has {kept} webhook endpoints, the most it may have; delete one first.",
                    limit=self._endpoint_limit,
                )
            taken = await db.fetchval(
                "SELECT id FROM webhook_endpoints WHERE enterprise_id = $1 AND url_key = $2 AND status <> 'deleted'",
                enterprise_id,
                destinations.url_key(url),
            )
            if taken is not None:
                raise Refused(
                    ErrorCode.WEBHOOK_URL_TAKEN,
                    "An endpoint of the enterprise already receives events at this URL; change its events instead.",
                    webhook_id=str(taken),
                )
            # The enterprise's event writers take turns (store/sql.py): once it is this
            # transaction's turn, every event of the enterprise numbered so far committed,
            # and every later one is numbered past the start below.
            await db.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", EVENTS_LOCK, enterprise_id)
            endpoint_id = uuid4()
            kid, sealed = seal_secret(self._codec, endpoint_id, secret)
            row = await db.fetchrow(
                f"INSERT INTO webhook_endpoints (id, enterprise_id, url, url_key, event_types, secret, secret_key_id,"  # noqa: S608
                f" delivered_through, created_by)"
                f" VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT coalesce(max(seq), 0) FROM events), $8)"
                f" RETURNING {_ENDPOINT_COLUMNS}",
                endpoint_id,
                enterprise_id,
                url,
                destinations.url_key(url),
                events,
                sealed,
                kid,
                actor,
            )
            assert row is not None
            await audit(db, enterprise_id, None, actor, AuditAction.WEBHOOK_CREATED, webhook_id=str(row["id"]), url=url)
        return WebhookView(**dict(row)), secret

    async def upsert_portal_endpoint(self, url: str, secret: str) -> None:
        kid, sealed = seal_secret(self._codec, PORTAL_ENDPOINT_ID, secret)
        await self._pool.execute(
            # From here on: every event of a transaction not yet committed (R22).
            "INSERT INTO webhook_endpoints (id, enterprise_id, url, secret, secret_key_id, delivered_through,"
            " delivered_xid, created_by) VALUES ($1, NULL, $2, $3, $4, 0, pg_snapshot_xmin(pg_current_snapshot()),"
            " 'settings')"
            " ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, secret = EXCLUDED.secret,"
            " secret_key_id = EXCLUDED.secret_key_id, status = 'enabled', disabled_at = NULL, disabled_reason = NULL",
            PORTAL_ENDPOINT_ID,
            url,
            sealed,
            kid,
        )

    async def reseal_secrets(self) -> int:
        """At a worker's start: clears the previous secrets whose overlap ended, and seals
        anew with the current key every secret sealed with another (after a rotation of
        PAYLOAD_KEYS, the old key can then be dropped). Answers how many were sealed anew;
        an endpoint whose secret no held key opens is disabled, to be registered again."""
        await clear_ended_overlaps(self._pool)
        current = self._codec.current_key_id
        rows = await self._pool.fetch(
            "SELECT id, secret, secret_key_id, previous_secret, previous_key_id FROM webhook_endpoints"
            " WHERE secret_key_id <> $1 OR previous_key_id <> $1",
            current,
        )
        for row in rows:
            endpoint_id = row["id"]
            try:
                secret = unseal_secret(self._codec, endpoint_id, row["secret_key_id"], row["secret"])
                previous = (
                    unseal_secret(self._codec, endpoint_id, row["previous_key_id"], row["previous_secret"])
                    if row["previous_secret"]
                    else None
                )
            except PayloadKeyError as err:
                log.warning("webhook endpoint %s disabled: %s", endpoint_id, err)
                await self._pool.execute(
                    "UPDATE webhook_endpoints SET status = 'disabled', disabled_at = now(), disabled_reason = $2"
                    " WHERE id = $1 AND status = 'enabled'",
                    endpoint_id,
                    "its secret's key is no longer in PAYLOAD_KEYS: register the endpoint again",
                )
                continue
            kid, sealed = seal_secret(self._codec, endpoint_id, secret)
            _, sealed_previous = seal_secret(self._codec, endpoint_id, previous) if previous else (None, None)
            # Only if no other process sealed it meanwhile.
            await self._pool.execute(
                "UPDATE webhook_endpoints SET secret = $3, secret_key_id = $4, previous_secret = $5,"
                " previous_key_id = CASE WHEN $5::text IS NULL THEN NULL ELSE $4 END"
                " WHERE id = $1 AND secret_key_id = $2",
                endpoint_id,
                row["secret_key_id"],
                sealed,
                kid,
                sealed_previous,
            )
        return len(rows)

    async def disable_portal_endpoint(self) -> None:
        await self._pool.execute(
            "UPDATE webhook_endpoints SET status = 'disabled', disabled_at = now(),"
            " disabled_reason = 'PORTAL_WEBHOOK_URL unset' WHERE id = $1 AND status = 'enabled'",
            PORTAL_ENDPOINT_ID,
        )

    async def endpoints(self, enterprise_id: str) -> list[WebhookView]:
        rows = await self._pool.fetch(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints"  # noqa: S608 (constant)
            " WHERE enterprise_id = $1 AND status <> 'deleted' ORDER BY created_at, id",
            enterprise_id,
        )
        return [WebhookView(**dict(r)) for r in rows]

    async def endpoint(self, enterprise_id: str, endpoint_id: UUID) -> WebhookView:
        row = await self._pool.fetchrow(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints"  # noqa: S608 (constant)
            " WHERE id = $1 AND enterprise_id = $2 AND status <> 'deleted'",
            endpoint_id,
            enterprise_id,
        )
        if row is None:
            raise Refused(ErrorCode.NOT_FOUND, "No such webhook endpoint.")
        return WebhookView(**dict(row))

    async def delete_endpoint(self, enterprise_id: str, endpoint_id: UUID, actor: str) -> WebhookView:
        return await self._change(
            enterprise_id,
            endpoint_id,
            actor,
            AuditAction.WEBHOOK_DELETED,
            "status = 'deleted', deleted_at = now()",
            refuse_disabled=False,
        )

    async def rotate_secret(self, enterprise_id: str, endpoint_id: UUID, actor: str) -> tuple[WebhookView, str]:
        secret = new_secret()
        kid, sealed = seal_secret(self._codec, endpoint_id, secret)
        view = await self._change(
            enterprise_id,
            endpoint_id,
            actor,
            AuditAction.WEBHOOK_SECRET_ROTATED,
            "previous_secret = secret, previous_key_id = secret_key_id,"
            f" previous_expires_at = now() + interval '{ROTATION_OVERLAP}', secret = $3, secret_key_id = $4",
            sealed,
            kid,
        )
        return view, secret

    async def _change(
        self,
        enterprise_id: str,
        endpoint_id: UUID,
        actor: str,
        action: AuditAction,
        assignments: str,
        *args: Any,
        refuse_disabled: bool = True,
    ) -> WebhookView:
        async with self._pool.acquire() as db, db.transaction():
            status = await db.fetchval(
                "SELECT status FROM webhook_endpoints WHERE id = $1 AND enterprise_id = $2 AND status <> 'deleted'"
                " FOR UPDATE",
                endpoint_id,
                enterprise_id,
            )
            if status is None:
                raise Refused(ErrorCode.NOT_FOUND, "No such webhook endpoint.")
            if refuse_disabled and status == "disabled":
                raise Refused(ErrorCode.WEBHOOK_DISABLED, "The endpoint is disabled; register it again.")
            row = await db.fetchrow(
                f"UPDATE webhook_endpoints SET {assignments} WHERE id = $1 AND enterprise_id = $2"  # noqa: S608
                f" RETURNING {_ENDPOINT_COLUMNS}",
                endpoint_id,
                enterprise_id,
                *args,
            )
            await audit(db, enterprise_id, None, actor, action, webhook_id=str(endpoint_id))
        assert row is not None
        return WebhookView(**dict(row))

    async def deliveries(self, endpoint_id: UUID, *, limit: int, before: int | None) -> DeliveryList:
        rows = await self._pool.fetch(
            "SELECT d.id, e.id AS event_id, e.type AS event_type, d.attempt, d.status, d.http_status,"
            " d.duration_ms, d.error, d.at FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq"
            " WHERE d.endpoint_id = $1 AND ($2::bigint IS NULL OR d.id < $2) ORDER BY d.id DESC LIMIT $3",
            endpoint_id,
            before,
            limit + 1,
        )
        page = [DeliveryView(**dict(r)) for r in rows[:limit]]
        return DeliveryList(deliveries=page, next_before=page[-1].id if len(rows) > limit else None)

    async def delivery_event(self, endpoint_id: UUID, delivery_id: int) -> int:
        seq: int | None = await self._pool.fetchval(
            "SELECT event_seq FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2", delivery_id, endpoint_id
        )
        if seq is None:
            raise Refused(ErrorCode.NOT_FOUND, "No such delivery of this endpoint.")
        return seq
