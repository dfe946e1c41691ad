-- Idempotency-Keys of registrations, remembered for IDEMPOTENCY_RETENTION (24 h): the same
-- key with another body is refused, and a key is judged here rather than by Temporal's
-- workflow-id reuse, which ends with the namespace's retention. `generation` counts the
-- key's uses after each window ran out: each one registers a partner of its own.
CREATE TABLE idempotency_keys (
    enterprise_id text NOT NULL,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    generation    integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (enterprise_id, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- One webhook endpoint per URL per enterprise: each endpoint POSTs every event once, so
-- two on one URL would double what a third party receives. `url_key` is the URL as
-- partners.destinations.url_key compares it; the index makes a race lose, not duplicate.
ALTER TABLE webhook_endpoints ADD COLUMN url_key text;
UPDATE webhook_endpoints e SET url_key = e.url
  WHERE e.enterprise_id IS NOT NULL AND e.status <> 'deleted'
    AND e.id = (SELECT f.id FROM webhook_endpoints f
                WHERE f.enterprise_id = e.enterprise_id AND f.url = e.url AND f.status <> 'deleted'
                ORDER BY f.created_at, f.id LIMIT 1);
CREATE UNIQUE INDEX webhook_endpoints_one_per_url ON webhook_endpoints (enterprise_id, url_key)
  WHERE status <> 'deleted';

-- Invitation mails asked for by hand, per partner and address, for 24 hours (see
-- activities/mail_quota.py): no one is mail-bombed through the service. The address is
-- kept as its SHA-256 only; rows older than the window are deleted as new ones come.
CREATE TABLE mail_quota (
    id          bigserial PRIMARY KEY,
    partner_id  uuid NOT NULL,
    email_hash  bytea NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mail_quota_by_recipient ON mail_quota (partner_id, email_hash, at);
CREATE INDEX mail_quota_by_partner ON mail_quota (partner_id, at);

-- Webhook signing secrets encrypted at rest with the payload keys (AES-256-GCM, bound to
-- the endpoint's id): `secret` and `previous_secret` hold nonce and ciphertext in
-- base64, `secret_key_id` and `previous_key_id` the key that sealed them. A secret
-- stored in clear before this cannot be sealed here (the keys are the processes'): its
-- endpoint is disabled, to be registered again; the portal's is rewritten at start.
ALTER TABLE webhook_endpoints ADD COLUMN secret_key_id text, ADD COLUMN previous_key_id text;
UPDATE webhook_endpoints SET status = 'disabled', disabled_at = now(),
       disabled_reason = 'its secret was stored in clear: register the endpoint again'
  WHERE status = 'enabled';
UPDATE webhook_endpoints SET secret = '', previous_secret = NULL, previous_expires_at = NULL;
