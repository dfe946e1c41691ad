"""WebhookDeliveries: what the webhook delivery reads and records (R15, R22), and the
wake-ups' flags: an endpoint's next events, the events of a batch, each attempt with the
cursor it moves, the endpoint given up; the sleeping endpoints to wake.

An enterprise's endpoint pages its events by `seq`, commit order within the enterprise.
The portal-wide endpoint reads every enterprise's, where `seq` is not commit order: it
reads in (xid, seq) order only what transactions older than the oldest in flight wrote."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from partners.activity_io import NextEventsOutput
from partners.events import AuditAction
from store.events import clear_ended_overlaps
from store.sql import audit

_AGE = "extract(epoch FROM now() - created_at)::float8 AS age"


def portal_unread(delivered_xid: str, delivered_through: str) -> str:
    """The portal-wide endpoint's unread events (R22), given the SQL of its position:
    past it in (xid, seq) order, of transactions older than any still in flight. Each of
    those committed or rolled back, so no commit can add an event below the position."""
    return (
        f"(xid, seq) > ({delivered_xid}::xid8, {delivered_through}::bigint)"
        " AND xid < pg_snapshot_xmin(pg_current_snapshot())"
    )


# Past a final attempt ($2 the event's seq, $3 its xid): an enterprise's endpoint by seq,
# the portal-wide one by (xid, seq); never backwards (a redelivery by hand is of the past).
_MOVE_CURSOR = (
    "UPDATE webhook_endpoints SET"
    " delivered_through = CASE WHEN enterprise_id IS NOT NULL THEN greatest(delivered_through, $2)"
    " WHEN (delivered_xid, delivered_through) < ($3::xid8, $2::bigint) THEN $2 ELSE delivered_through END,"
    " delivered_xid = CASE WHEN enterprise_id IS NULL AND (delivered_xid, delivered_through) < ($3::xid8, $2::bigint)"
    " THEN $3::xid8 ELSE delivered_xid END"
    " WHERE id = $1"
)

# The sleeping endpoints with events waiting, woken (their flag cleared) in one statement.
_WAITING_SLEEPERS = (
    "UPDATE webhook_endpoints w SET sleeping = false WHERE sleeping AND status = 'enabled' AND CASE"  # noqa: S608
    " WHEN w.enterprise_id IS NULL"
    f" THEN EXISTS (SELECT 1 FROM events WHERE {portal_unread('w.delivered_xid', 'w.delivered_through')})"
    " ELSE EXISTS (SELECT 1 FROM events e WHERE e.enterprise_id = w.enterprise_id AND e.seq > w.delivered_through)"
    " END RETURNING id"
)


class WebhookDeliveries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def clear_ended_overlap(self, endpoint_id: UUID) -> None:
        """A rotation's previous secret is kept for its overlap only, idle endpoints' too."""
        await clear_ended_overlaps(self._pool, endpoint_id)

    async def pending(self, endpoint_id: UUID, limit: int) -> NextEventsOutput:
        """The endpoint's next events (at most `limit`), how many wait and the oldest's age;
        `stopped` once it is disabled or deleted."""
        endpoint = await self._pool.fetchrow(
            "SELECT enterprise_id, event_types, status, delivered_through, delivered_xid FROM webhook_endpoints"
            " WHERE id = $1",
            endpoint_id,
        )
        if endpoint is None or endpoint["status"] != "enabled":
            return NextEventsOutput(seqs=[], stopped=True)
        if endpoint["enterprise_id"] is None:
            # Every enterprise's: only what no transaction still in flight can add to (R22).
            rows = await self._pool.fetch(
                f"SELECT seq, count(*) OVER () AS backlog, {_AGE} FROM events"  # noqa: S608 (constants)
                f" WHERE {portal_unread('$1', '$2')} AND ($3::text[] IS NULL OR type = ANY($3))"
                " ORDER BY xid, seq LIMIT $4",
                endpoint["delivered_xid"],
                endpoint["delivered_through"],
                endpoint["event_types"],
                limit,
            )
        else:
            rows = await self._pool.fetch(
                f"SELECT seq, count(*) OVER () AS backlog, {_AGE} FROM events"  # noqa: S608 (a constant)
                " WHERE seq > $1 AND enterprise_id = $2 AND ($3::text[] IS NULL OR type = ANY($3))"
                " ORDER BY seq LIMIT $4",
                endpoint["delivered_through"],
                endpoint["enterprise_id"],
                endpoint["event_types"],
                limit,
            )
        if not rows:
            return NextEventsOutput(seqs=[])
        return NextEventsOutput(seqs=[r["seq"] for r in rows], backlog=rows[0]["backlog"], oldest_age=rows[0]["age"])

    async def flag_asleep(self, endpoint_id: UUID, asleep: bool) -> None:
        """The flag the wake-ups look for: set while an enabled endpoint sleeps."""
        await self._pool.execute(
            "UPDATE webhook_endpoints SET sleeping = $2 WHERE id = $1 AND (NOT $2 OR status = 'enabled')",
            endpoint_id,
            asleep,
        )

    async def endpoint(self, endpoint_id: UUID) -> asyncpg.Record | None:
        """What a delivery needs of its endpoint: where, the sealed secrets, its cursor."""
        row: asyncpg.Record | None = await self._pool.fetchrow(
            "SELECT url, secret, secret_key_id, CASE WHEN previous_expires_at > now() THEN previous_secret END"
            " AS previous, previous_key_id, delivered_through, delivered_xid, enterprise_id FROM webhook_endpoints"
            " WHERE id = $1",
            endpoint_id,
        )
        return row

    async def events(self, seqs: list[int], endpoint: asyncpg.Record) -> list[asyncpg.Record]:
        """Of `seqs`, the endpoint's enterprise's events only, in the order given (the
        portal-wide endpoint's is not seq order), each saying whether the endpoint's cursor
        is past it already (`passed`)."""
        rows = await self._pool.fetch(
            "SELECT seq, xid, id, type, created_at, enterprise_id, partner_id, data,"
            " extract(epoch FROM now() - created_at)::float8 AS age,"
            " CASE WHEN $2::text IS NULL THEN (xid, seq) <= ($3::xid8, $4::bigint) ELSE seq <= $4 END AS passed"
            " FROM events WHERE seq = ANY($1) AND ($2::text IS NULL OR enterprise_id = $2)"
            " ORDER BY array_position($1, seq)",
            seqs,
            endpoint["enterprise_id"],
            endpoint["delivered_xid"],
            endpoint["delivered_through"],
        )
        return list(rows)

    async def record(
        self,
        endpoint_id: UUID,
        event: asyncpg.Record,
        attempt: int,
        status: str,
        http_status: int | None,
        duration_ms: int,
        error: str | None,
    ) -> None:
        """The attempt, listed for the portal; once it is final, the endpoint's cursor moves
        past the event in the same transaction."""
        async with self._pool.acquire() as db, db.transaction():
            await db.execute(
                # An event pruned meanwhile (R17) has no attempts to list.
                "INSERT INTO webhook_deliveries (endpoint_id, event_seq, attempt, status, http_status, duration_ms,"
                " error) SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM events WHERE seq = $2)",
                endpoint_id,
                event["seq"],
                attempt,
                status,
                http_status,
                duration_ms,
                error,
            )
            if status != "retrying":
                await db.execute(_MOVE_CURSOR, endpoint_id, event["seq"], event["xid"])

    async def give_up(self, endpoint_id: UUID, seq: int | None, error: str) -> None:
        """The delivery of `seq` failed for good: recorded, the cursor past it, the endpoint
        disabled (and audited, for an enterprise's own)."""
        async with self._pool.acquire() as db, db.transaction():
            endpoint = await db.fetchrow(
                "UPDATE webhook_endpoints SET status = 'disabled', disabled_at = now(), disabled_reason = $2"
                " WHERE id = $1 AND status = 'enabled' RETURNING enterprise_id",
                endpoint_id,
                f"failing since the retry period ran out: {error}"[:300],
            )
            xid = await db.fetchval("SELECT xid FROM events WHERE seq = $1", seq)
            if xid is not None:
                await db.execute(_MOVE_CURSOR, endpoint_id, seq, xid)
            await db.execute(
                "INSERT INTO webhook_deliveries (endpoint_id, event_seq, attempt, status, duration_ms, error)"
                " SELECT $1, $2, 0, 'failed', 0, $3 WHERE EXISTS (SELECT 1 FROM events WHERE seq = $2)",
                endpoint_id,
                seq,
                f"gave up: {error}"[:300],
            )
            if endpoint is not None and endpoint["enterprise_id"] is not None:
                await audit(
                    db,
                    endpoint["enterprise_id"],
                    None,
                    "system",
                    AuditAction.WEBHOOK_DISABLED,
                    webhook_id=str(endpoint_id),
                )

    async def wake_sleepers_of(self, enterprises: set[str]) -> list[UUID]:
        """The sleeping endpoints of these enterprises and the portal-wide one, woken."""
        rows = await self._pool.fetch(
            "UPDATE webhook_endpoints SET sleeping = false"
            " WHERE sleeping AND status = 'enabled' AND (enterprise_id = ANY($1::text[]) OR enterprise_id IS NULL)"
            " RETURNING id",
            sorted(enterprises),
        )
        return [r["id"] for r in rows]

    async def wake_sleepers_behind(self) -> list[UUID]:
        """Every sleeping endpoint that has events waiting, woken."""
        return [r["id"] for r in await self._pool.fetch(_WAITING_SLEEPERS)]
