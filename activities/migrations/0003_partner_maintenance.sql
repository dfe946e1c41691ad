-- Grants of products and APIs, partner logos.

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

ALTER TABLE partners
    ADD COLUMN logo bytea,
    ADD COLUMN logo_type text CHECK (logo_type IN ('image/png', 'image/jpeg', 'image/webp')),
    ADD COLUMN logo_updated_at timestamptz;
