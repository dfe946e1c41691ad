-- R23: a partner suspended and resumed. While suspended nothing grants access through it
-- (every access query reads status = 'active'), its links accept no one and its mails
-- wait; a resume puts back the status it had (`suspended_from`: pending or active) and
-- moves its pending invitations' schedule on by the time it was suspended.
ALTER TABLE partners DROP CONSTRAINT partners_status_check;
ALTER TABLE partners ADD CONSTRAINT partners_status_check
    CHECK (status IN ('pending', 'active', 'suspended', 'deactivated'));
ALTER TABLE partners
    ADD COLUMN suspended_at     timestamptz,
    ADD COLUMN suspended_reason text CHECK (length(suspended_reason) <= 500),
    ADD COLUMN suspended_from   text CHECK (suspended_from IN ('pending', 'active'));
ALTER TABLE partners ADD CONSTRAINT partners_suspension_whole
    CHECK ((status = 'suspended') = (suspended_at IS NOT NULL AND suspended_from IS NOT NULL));
