-- The console (R19): single-use links the portal mints for a signed-in person, and the
-- sessions they open. Only hashes of the link and session tokens are kept.

CREATE TABLE console_links (
    token_hash    bytea PRIMARY KEY,
    actor_email   text NOT NULL,
    actor_role    text NOT NULL CHECK (actor_role IN ('account_holder', 'partner_user')),
    enterprise_id text,
    locale        text NOT NULL CHECK (locale IN ('pt-BR', 'en')),
    return_to     text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);
CREATE INDEX console_links_by_age ON console_links (expires_at);

CREATE TABLE console_sessions (
    id_hash       bytea PRIMARY KEY,
    actor_email   text NOT NULL,
    actor_role    text NOT NULL CHECK (actor_role IN ('account_holder', 'partner_user')),
    enterprise_id text,
    locale        text NOT NULL CHECK (locale IN ('pt-BR', 'en')),
    return_to     text,
    csrf          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz,
    -- The registration being typed, step by step (nothing typed is lost on a refusal).
    draft         jsonb NOT NULL DEFAULT '{}'::jsonb,
    draft_logo    bytea,
    draft_logo_type text
);
CREATE INDEX console_sessions_by_age ON console_sessions (last_seen_at);
