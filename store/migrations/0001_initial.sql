-- Partners, their domains, logos, people, invitations and grants; the e-mail send ledger;
-- the audit log. One migration until the first release; later changes add files.

CREATE TABLE enterprises (
    id            text PRIMARY KEY,
    display_name  text,
    -- R2: NULL means the service default (PARTNER_LIMIT).
    partner_limit integer CHECK (partner_limit >= 0),
    locale        text CHECK (locale IN ('pt-BR', 'en')),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE partners (
    id             uuid PRIMARY KEY,
    enterprise_id  text NOT NULL REFERENCES enterprises (id),
    name           text NOT NULL,
    status         text NOT NULL CHECK (status IN ('pending', 'active', 'deactivated')),
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    activated_at   timestamptz,
    deactivated_at timestamptz,
    logo           bytea,
    logo_type      text CHECK (logo_type IN ('image/png', 'image/jpeg', 'image/webp')),
    logo_updated_at timestamptz
);
CREATE INDEX partners_by_enterprise ON partners (enterprise_id, created_at);

CREATE TABLE partner_domains (
    partner_id    uuid NOT NULL REFERENCES partners (id),
    enterprise_id text NOT NULL REFERENCES enterprises (id),
    domain        text NOT NULL,
    released      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (partner_id, domain)
);
-- R3: a domain belongs to at most one non-deactivated partner of an enterprise.
CREATE UNIQUE INDEX partner_domains_taken ON partner_domains (enterprise_id, domain)
    WHERE NOT released;

-- Memberships, ended ones kept (R13): who ended it, when and how. A person removed may
-- be invited again later: a new row, the old one stays as it was.
CREATE TABLE members (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    partner_id uuid NOT NULL REFERENCES partners (id),
    email      text NOT NULL,
    first_name text NOT NULL,
    last_name  text NOT NULL,
    role       text NOT NULL CHECK (role IN ('admin', 'member')),
    active     boolean NOT NULL DEFAULT true,
    joined_at  timestamptz NOT NULL DEFAULT now(),
    ended_at   timestamptz,
    ended_by   text,
    end_reason text CHECK (end_reason IN ('removed', 'left', 'partner_deactivated', 'erased')),
    CHECK (active = (ended_at IS NULL))
);
-- One active membership per person and partner.
CREATE UNIQUE INDEX members_active ON members (partner_id, email) WHERE active;
-- R5: never two Admins; "exactly one once active" is kept by the transactions.
CREATE UNIQUE INDEX members_one_admin ON members (partner_id) WHERE role = 'admin' AND active;
-- R14: what a signed-in person may use, on the portal's request path.
CREATE INDEX members_by_email ON members (email, partner_id) WHERE active;

CREATE TABLE invitations (
    id           uuid PRIMARY KEY,
    partner_id   uuid NOT NULL REFERENCES partners (id),
    email        text NOT NULL,
    first_name   text NOT NULL,
    last_name    text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'member')),
    purpose      text NOT NULL CHECK (purpose IN ('first_admin', 'member', 'admin_replacement')),
    state        text NOT NULL CHECK (state IN
                     ('pending', 'accepted', 'expired', 'cancelled', 'superseded', 'undeliverable')),
    sends        integer NOT NULL DEFAULT 0,
    -- R7: links of sends before this one belong to an expired period (the invitation was
    -- revived since) and accept nothing.
    live_from_send integer NOT NULL DEFAULT 1,
    max_sends    integer NOT NULL,
    next_send_at timestamptz,
    expires_at   timestamptz,
    last_error   text,
    invited_by   text NOT NULL,
    locale       text NOT NULL DEFAULT 'pt-BR' CHECK (locale IN ('pt-BR', 'en')),
    -- The workflow that runs the invitation, where its updates go: its own
    -- `invitation-{id}`, or for a first admin its partner's `partner-onboarding-{id}`.
    workflow_id  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    closed_at    timestamptz
);
-- Invitations are listed newest first, a page at a time (keyset on created_at, id).
CREATE INDEX invitations_by_partner ON invitations (partner_id, created_at DESC, id DESC);
-- R7: inviting an address twice while the first invitation is pending is refused
-- (already_invited); the index makes that hold under concurrency too.
CREATE UNIQUE INDEX invitations_one_pending ON invitations (partner_id, email) WHERE state = 'pending';

-- The send ledger, one row per (invitation, send number): an activity retried after the
-- SMTP server took the mail finds status 'sent' and does not send it again; one retried
-- after a crash between the SMTP answer and 'sent' sends again and counts the attempt.
CREATE TABLE invitation_sends (
    invitation_id uuid NOT NULL REFERENCES invitations (id),
    send_number   integer NOT NULL,
    status        text NOT NULL CHECK (status IN ('sending', 'sent')),
    attempts      integer NOT NULL DEFAULT 1,
    requested_by  text,  -- who resent it by hand; NULL for the automatic sends
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    PRIMARY KEY (invitation_id, send_number)
);

-- Only the SHA-256 of a link's token is kept. Every token ever mailed for a pending
-- invitation works; none works once the invitation is closed.
CREATE TABLE invitation_tokens (
    token_hash    bytea PRIMARY KEY,
    invitation_id uuid NOT NULL REFERENCES invitations (id),
    send_number   integer NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Grants of products and APIs.
CREATE TABLE partner_grants (
    id         uuid PRIMARY KEY,
    partner_id uuid NOT NULL REFERENCES partners (id),
    kind       text NOT NULL CHECK (kind IN ('product', 'api')),
    ref        text NOT NULL,
    name       text NOT NULL,
    granted_by text NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    -- R9: a revoked grant is kept, with who revoked it and when.
    revoked_by text,
    revoked_at timestamptz
);
-- Granting the same ref twice is refused (already_granted) while the first is active.
CREATE UNIQUE INDEX partner_grants_active ON partner_grants (partner_id, kind, ref) WHERE revoked_at IS NULL;

CREATE TABLE audit_log (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    enterprise_id text NOT NULL,
    partner_id    uuid,
    actor         text NOT NULL,
    action        text NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_by_partner ON audit_log (partner_id, id DESC);

-- Bad invitation-link attempts per client (an IPv4 address or an IPv6 /64) in the
-- current window, shared by every API process; rows of past windows are deleted.
CREATE TABLE link_attempts (
    client       text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    misses       integer NOT NULL
);

-- R15: every audited change is also an event, written in the same transaction (an outbox).
-- Events of one enterprise are written one transaction at a time (an advisory lock
-- taken with the insert, held to the commit), so `seq` is commit order per enterprise:
-- a reader paging by `seq` misses nothing and sees nothing twice.
CREATE TABLE events (
    seq           bigserial PRIMARY KEY,
    id            text NOT NULL UNIQUE,  -- evt_<hex>: the webhook-id, the same on every retry
    type          text NOT NULL,
    enterprise_id text NOT NULL,
    partner_id    uuid,
    data          jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_by_enterprise ON events (enterprise_id, seq);

-- Where events are pushed. enterprise_id NULL: the portal-wide endpoint of the settings
-- (PORTAL_WEBHOOK_URL), which receives every enterprise's events.
CREATE TABLE webhook_endpoints (
    id               uuid PRIMARY KEY,
    enterprise_id    text,
    url              text NOT NULL,
    event_types      text[],  -- NULL: every type
    secret           text NOT NULL,
    -- After a rotation the old secret signs beside the new one until it expires.
    previous_secret  text,
    previous_expires_at timestamptz,
    status           text NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled', 'deleted')),
    -- Every event up to this seq is delivered or failed: where delivery goes on from.
    delivered_through bigint NOT NULL,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    disabled_at      timestamptz,
    disabled_reason  text
);
CREATE INDEX webhook_endpoints_by_enterprise ON webhook_endpoints (enterprise_id, created_at);

-- Every delivery attempt: the event, the attempt, what the receiver answered, how long.
CREATE TABLE webhook_deliveries (
    id          bigserial PRIMARY KEY,
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id),
    event_seq   bigint NOT NULL REFERENCES events (seq),
    attempt     integer NOT NULL,
    status      text NOT NULL CHECK (status IN ('delivered', 'retrying', 'failed')),
    http_status integer,
    duration_ms integer NOT NULL,
    error       text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id DESC);
