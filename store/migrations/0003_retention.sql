-- R17: every kind of record has a retention; the partners-retention schedule prunes
-- what is past it, in batches, by the indexes below.

-- An enterprise's own audit retention (seconds); NULL: the service's AUDIT_RETENTION.
ALTER TABLE enterprises ADD COLUMN audit_retention integer CHECK (audit_retention > 0);

-- Per enterprise, the newest event seq pruned: a feed cursor before it has missed
-- events (410 cursor_expired); one at or after it has missed nothing.
CREATE TABLE event_horizons (
    enterprise_id  text PRIMARY KEY,
    pruned_through bigint NOT NULL
);

-- An event goes with its delivery attempts.
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_seq);
CREATE INDEX events_by_age ON events (created_at);
CREATE INDEX webhook_deliveries_by_age ON webhook_deliveries (at);
CREATE INDEX audit_log_by_age ON audit_log (at);
CREATE INDEX invitations_closed ON invitations (closed_at) WHERE state <> 'pending';
CREATE INDEX members_ended ON members (ended_at) WHERE NOT active;
CREATE INDEX mail_quota_by_age ON mail_quota (at);

-- A closed invitation's tokens go with it.
CREATE INDEX invitation_tokens_by_invitation ON invitation_tokens (invitation_id);

-- When a deactivated partner's logo and personal data were removed (the row stays).
ALTER TABLE partners ADD COLUMN personal_data_pruned_at timestamptz;

-- A key's generation is now the microsecond of its use (unique whether an expired row is
-- taken over or was pruned), beyond an integer's range.
ALTER TABLE idempotency_keys ALTER COLUMN generation TYPE bigint;
