-- Guarantees that hold across enterprises and under concurrency.

-- R22: `seq` is commit order within one enterprise only (its writers take turns), so a
-- reader of every enterprise's events (the portal-wide endpoint) cannot page by it: a
-- transaction of enterprise A may number its event before B's and commit after it. Each
-- event keeps the id of the transaction that wrote it; that reader reads only events of
-- transactions older than the oldest one still in flight, in (xid, seq) order: a set
-- that no later commit can add to. Rows written before this migration share its xid.
ALTER TABLE events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_by_xid ON events (xid, seq);

-- The portal-wide endpoint's position in that order: (delivered_xid, delivered_through).
-- An enterprise's own endpoints keep paging by seq (delivered_xid NULL).
ALTER TABLE webhook_endpoints ADD COLUMN delivered_xid xid8;
UPDATE webhook_endpoints SET delivered_xid = pg_current_xact_id() WHERE enterprise_id IS NULL;

-- R17: a deleted endpoint is pruned, with its attempts, its retention after its deletion.
ALTER TABLE webhook_endpoints ADD COLUMN deleted_at timestamptz;
UPDATE webhook_endpoints w SET deleted_at = coalesce(
    (SELECT max(a.at) FROM audit_log a WHERE a.action = 'webhook_deleted' AND a.details ->> 'webhook_id' = w.id::text),
    now())
WHERE status = 'deleted';
CREATE INDEX webhook_endpoints_deleted ON webhook_endpoints (deleted_at) WHERE status = 'deleted';

-- R19: the portal ends a person's console sessions (and unused links) when it signs them
-- out or a role of theirs ends.
CREATE INDEX console_sessions_by_person ON console_sessions (lower(actor_email)) WHERE ended_at IS NULL;
CREATE INDEX console_links_by_person ON console_links (lower(actor_email)) WHERE used_at IS NULL;

-- The operators' readiness: the relay's refusals among the pending invitations, indexed
-- (a table of millions of invitations holds a handful with an error).
CREATE INDEX invitations_mail_faults ON invitations (created_at DESC) WHERE state = 'pending' AND last_error IS NOT NULL;

-- R24: the mail quotas count mailboxes (the local part without its +tag, case-folded),
-- per enterprise however many partners it registers and deactivates, and the mails to
-- one domain from one enterprise. Claims from before count for their partner's enterprise.
ALTER TABLE mail_quota ADD COLUMN enterprise_id text, ADD COLUMN domain text;
UPDATE mail_quota q SET enterprise_id = p.enterprise_id FROM partners p WHERE p.id = q.partner_id;
CREATE INDEX mail_quota_by_enterprise_recipient ON mail_quota (enterprise_id, email_hash, at);
CREATE INDEX mail_quota_by_enterprise_domain ON mail_quota (enterprise_id, domain, at);

-- Registrations per enterprise per day (ENTERPRISE_DAILY_REGISTRATION_LIMIT).
CREATE INDEX partners_by_enterprise_created ON partners (enterprise_id, created_at);
