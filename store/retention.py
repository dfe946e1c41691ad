"""Retention (R17): what is past its time is removed, a batch at a time.

Each kind is one statement that picks at most `batch` rows past their retention with
`FOR UPDATE SKIP LOCKED` (a row a request holds is left for the next batch, and no
request waits for the prune) and deletes them, with what belongs to them, in one short
transaction. `RetentionWorkflow` calls `prune` until a kind has nothing left.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from partners.models import PruneKind
from partners.settings import Settings
from store.persons import ERASED_FIRST_NAME, ERASED_LAST_NAME

# What stands in, once a deactivated partner's retention ran out, for whoever granted,
# revoked or registered it (the account holders' addresses).
PRUNED_ACTOR = "pruned@retention.invalid"


@dataclass(frozen=True)
class Pruned:
    """What one batch removed: rows by kind (an event's attempts count as deliveries)."""

    rows: dict[PruneKind, int]
    full: bool  # the batch was full: there may be more


_EVENTS = """
WITH doomed AS (
    SELECT seq FROM events WHERE created_at < now() - make_interval(secs => $1)
    ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED),
attempts AS (DELETE FROM webhook_deliveries d USING doomed WHERE d.event_seq = doomed.seq RETURNING 1),
gone AS (DELETE FROM events e USING doomed WHERE e.seq = doomed.seq RETURNING e.seq, e.enterprise_id),
horizon AS (
    INSERT INTO event_horizons (enterprise_id, pruned_through)
    SELECT enterprise_id, max(seq) FROM gone GROUP BY enterprise_id
    ON CONFLICT (enterprise_id)
    DO UPDATE SET pruned_through = greatest(event_horizons.pruned_through, EXCLUDED.pruned_through))
SELECT (SELECT count(*) FROM gone) AS events, (SELECT count(*) FROM attempts) AS deliveries
"""

_DELIVERIES = """
WITH doomed AS (
    SELECT id FROM webhook_deliveries WHERE at < now() - make_interval(secs => $1)
    ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED),
gone AS (DELETE FROM webhook_deliveries d USING doomed WHERE d.id = doomed.id RETURNING 1)
SELECT count(*) FROM gone
"""

# $1 the service's AUDIT_RETENTION, $3 the shortest retention of any enterprise (the
# index finds candidates by it; each row is then judged by its own enterprise's).
_AUDIT = """
WITH doomed AS (
    SELECT a.id FROM audit_log a LEFT JOIN enterprises e ON e.id = a.enterprise_id
    WHERE a.at < now() - make_interval(secs => $3)
      AND a.at < now() - make_interval(secs => coalesce(e.audit_retention, $1))
    ORDER BY a.at LIMIT $2 FOR UPDATE OF a SKIP LOCKED),
gone AS (DELETE FROM audit_log a USING doomed WHERE a.id = doomed.id RETURNING 1)
SELECT count(*) FROM gone
"""

_INVITATIONS = """
WITH doomed AS (
    SELECT id FROM invitations
    WHERE state <> 'pending' AND closed_at < now() - make_interval(secs => $1)
    ORDER BY closed_at LIMIT $2 FOR UPDATE SKIP LOCKED),
tokens AS (DELETE FROM invitation_tokens t USING doomed WHERE t.invitation_id = doomed.id),
sends AS (DELETE FROM invitation_sends s USING doomed WHERE s.invitation_id = doomed.id),
gone AS (DELETE FROM invitations i USING doomed WHERE i.id = doomed.id RETURNING 1)
SELECT count(*) FROM gone
"""

_MEMBERSHIPS = """
WITH doomed AS (
    SELECT id FROM members WHERE NOT active AND ended_at < now() - make_interval(secs => $1)
    ORDER BY ended_at LIMIT $2 FOR UPDATE SKIP LOCKED),
gone AS (DELETE FROM members m USING doomed WHERE m.id = doomed.id RETURNING 1)
SELECT count(*) FROM gone
"""

# A deactivated partner past its retention keeps its row, name and audit trail; its logo
# goes, and every person in it is pseudonymised as erasure does (their memberships ended
# at deactivation, their invitations closed then).
_DEACTIVATED_PARTNERS = """
WITH doomed AS (
    SELECT id FROM partners
    WHERE status = 'deactivated' AND personal_data_pruned_at IS NULL
      AND deactivated_at < now() - make_interval(secs => $1)
    ORDER BY deactivated_at LIMIT $2 FOR UPDATE SKIP LOCKED),
people AS (
    UPDATE members m SET email = 'erased-' || md5(m.id::text) || '@erased.invalid', first_name = $3, last_name = $4
    FROM doomed WHERE m.partner_id = doomed.id),
invited AS (
    UPDATE invitations i SET email = 'erased-' || md5(i.id::text) || '@erased.invalid', first_name = $3,
        last_name = $4, invited_by = $5
    FROM doomed WHERE i.partner_id = doomed.id),
grants AS (
    UPDATE partner_grants g SET granted_by = $5, revoked_by = CASE WHEN g.revoked_by IS NULL THEN NULL ELSE $5 END
    FROM doomed WHERE g.partner_id = doomed.id),
gone AS (
    UPDATE partners p SET logo = NULL, logo_type = NULL, logo_updated_at = NULL, created_by = $5,
        personal_data_pruned_at = now()
    FROM doomed WHERE p.id = doomed.id RETURNING 1)
SELECT count(*) FROM gone
"""

_IDEMPOTENCY_KEYS = """
WITH doomed AS (
    SELECT enterprise_id, key FROM idempotency_keys WHERE created_at <= now() - make_interval(secs => $1)
    ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED),
gone AS (DELETE FROM idempotency_keys k USING doomed
    WHERE (k.enterprise_id, k.key) = (doomed.enterprise_id, doomed.key) RETURNING 1)
SELECT count(*) FROM gone
"""

# A claim counts for 24 hours (store/mail_quota.py).
_MAIL_QUOTA = """
WITH doomed AS (
    SELECT ctid FROM mail_quota WHERE at <= now() - make_interval(secs => $1)
    ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED),
gone AS (DELETE FROM mail_quota q USING doomed WHERE q.ctid = doomed.ctid RETURNING 1)
SELECT count(*) FROM gone
"""

_SUPPRESSIONS = """
WITH doomed AS (
    SELECT mailbox FROM suppressions WHERE created_at <= now() - make_interval(secs => $1)
    LIMIT $2 FOR UPDATE SKIP LOCKED),
gone AS (DELETE FROM suppressions s USING doomed WHERE s.mailbox = doomed.mailbox RETURNING 1)
SELECT count(*) FROM gone
"""

_LINK_ATTEMPTS = """
WITH doomed AS (
    SELECT client FROM link_attempts WHERE window_start <= now() - make_interval(secs => $1)
    LIMIT $2 FOR UPDATE SKIP LOCKED),
gone AS (DELETE FROM link_attempts l USING doomed WHERE l.client = doomed.client RETURNING 1)
SELECT count(*) FROM gone
"""

# Deleted endpoints their retention after the deletion: first their attempts, a batch at
# a time, then the endpoint once none is left (the next batch: one statement sees the
# attempts as they were when it began).
_WEBHOOK_ENDPOINTS = """
WITH deleted AS (
    SELECT id FROM webhook_endpoints
    WHERE status = 'deleted' AND deleted_at < now() - make_interval(secs => $1)),
attempts AS (
    DELETE FROM webhook_deliveries WHERE id IN (
        SELECT id FROM webhook_deliveries WHERE endpoint_id IN (SELECT id FROM deleted)
        LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1),
doomed AS (
    SELECT id FROM webhook_endpoints w WHERE id IN (SELECT id FROM deleted)
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = w.id)
    LIMIT $2 FOR UPDATE SKIP LOCKED),
gone AS (DELETE FROM webhook_endpoints w USING doomed WHERE w.id = doomed.id RETURNING 1)
SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM attempts)
"""


# Console links a day after they expired, sessions a day after they ended (logged out,
# idle past CONSOLE_SESSION_IDLE, or past CONSOLE_SESSION_MAX): $1 a day, $3 the idle
# limit, $4 the absolute one.
_CONSOLE = """
WITH links AS (
    DELETE FROM console_links WHERE token_hash IN (
        SELECT token_hash FROM console_links WHERE expires_at < now() - make_interval(secs => $1)
        LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1),
sessions AS (
    DELETE FROM console_sessions WHERE id_hash IN (
        SELECT id_hash FROM console_sessions
        WHERE coalesce(ended_at, least(last_seen_at + make_interval(secs => $3),
                                       created_at + make_interval(secs => $4)))
            < now() - make_interval(secs => $1)
        LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1)
SELECT (SELECT count(*) FROM links) + (SELECT count(*) FROM sessions)
"""


class Retention:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    def _retention(self, kind: PruneKind) -> int:
        """The kind's retention in seconds."""
        s = self._settings
        return {
            PruneKind.EVENTS: s.events_retention,
            PruneKind.DELIVERIES: s.deliveries_retention,
            PruneKind.AUDIT: s.audit_retention,
            PruneKind.INVITATIONS: s.closed_invitations_retention,
            PruneKind.MEMBERSHIPS: s.ended_memberships_retention,
            PruneKind.DEACTIVATED_PARTNERS: s.deactivated_partners_retention,
            PruneKind.IDEMPOTENCY_KEYS: s.idempotency_retention,
            PruneKind.MAIL_QUOTA: 24 * 3600,
            PruneKind.LINK_ATTEMPTS: s.link_attempt_window,
            PruneKind.WEBHOOK_ENDPOINTS: s.deliveries_retention,
            PruneKind.CONSOLE: 24 * 3600,
            PruneKind.SUPPRESSIONS: s.suppressions_retention,
        }[kind]

    async def prune_batch(self, kind: PruneKind) -> Pruned:
        """One batch of `kind`: at most RETENTION_BATCH rows, in one short transaction."""
        retention, batch = self._retention(kind), self._settings.retention_batch
        if kind is PruneKind.EVENTS:
            row = await self._pool.fetchrow(_EVENTS, retention, batch)
            assert row is not None
            rows = {PruneKind.EVENTS: int(row["events"]), PruneKind.DELIVERIES: int(row["deliveries"])}
            return Pruned(rows=rows, full=rows[PruneKind.EVENTS] >= batch)
        args: tuple[object, ...] = (retention, batch)
        if kind is PruneKind.AUDIT:
            shortest = await self._pool.fetchval("SELECT min(audit_retention) FROM enterprises")
            args += (min(retention, shortest or retention),)
        elif kind is PruneKind.DEACTIVATED_PARTNERS:
            args += (ERASED_FIRST_NAME, ERASED_LAST_NAME, PRUNED_ACTOR)
        elif kind is PruneKind.CONSOLE:
            args += (self._settings.console_session_idle, self._settings.console_session_max)
        count = int(await self._pool.fetchval(_STATEMENTS[kind], *args))
        return Pruned(rows={kind: count}, full=count >= batch)


_STATEMENTS = {
    PruneKind.DELIVERIES: _DELIVERIES,
    PruneKind.AUDIT: _AUDIT,
    PruneKind.INVITATIONS: _INVITATIONS,
    PruneKind.MEMBERSHIPS: _MEMBERSHIPS,
    PruneKind.DEACTIVATED_PARTNERS: _DEACTIVATED_PARTNERS,
    PruneKind.IDEMPOTENCY_KEYS: _IDEMPOTENCY_KEYS,
    PruneKind.MAIL_QUOTA: _MAIL_QUOTA,
    PruneKind.LINK_ATTEMPTS: _LINK_ATTEMPTS,
    PruneKind.WEBHOOK_ENDPOINTS: _WEBHOOK_ENDPOINTS,
    PruneKind.CONSOLE: _CONSOLE,
    PruneKind.SUPPRESSIONS: _SUPPRESSIONS,
}
