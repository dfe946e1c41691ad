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
