-- Locales of mails and pages; one pending invitation per address and partner.

ALTER TABLE enterprises ADD COLUMN locale text CHECK (locale IN ('pt-BR', 'en'));

ALTER TABLE invitations ADD COLUMN locale text NOT NULL DEFAULT 'pt-BR'
    CHECK (locale IN ('pt-BR', 'en'));

-- R7: inviting an address twice while the first invitation is pending is refused
-- (already_invited); the index makes that hold under concurrency too.
CREATE UNIQUE INDEX invitations_one_pending ON invitations (partner_id, email) WHERE state = 'pending';
