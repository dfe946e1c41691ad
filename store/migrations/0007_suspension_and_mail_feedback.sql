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

-- R24: every send goes out with its own return path, bounces+<tag>@ the bounce domain;
-- the tag (an HMAC of the send's id) finds the send a delivery report is about.
ALTER TABLE invitation_sends ADD COLUMN return_tag text;
CREATE UNIQUE INDEX invitation_sends_by_return_tag ON invitation_sends (return_tag) WHERE return_tag IS NOT NULL;

-- R24: a mailbox that complained is mailed no new invitation until an operator lifts it;
-- kept SUPPRESSION_RETENTION (R17), part of its person's export and erasure (R16).
CREATE TABLE suppressions (
    mailbox        text PRIMARY KEY,      -- the address case-folded, its +tag dropped
    reason         text NOT NULL CHECK (reason IN ('complaint')),
    invitation_id  uuid,                  -- the invitation whose mail was complained of
    enterprise_id  text NOT NULL,         -- whose mail it was (the audit trail's)
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX suppressions_by_age ON suppressions (created_at);

-- R24: the person who asked for an invitation is told how it ended, one mail per
-- outcome. Only that it was told: the address is the invitation's invited_by, read when
-- the mail goes out, and the row goes with its invitation (R16, R17).
CREATE TABLE inviter_notices (
    invitation_id uuid NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
    outcome       text NOT NULL CHECK (outcome IN ('accepted', 'expired', 'undeliverable')),
    status        text NOT NULL CHECK (status IN ('sending', 'sent', 'skipped')),
    at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (invitation_id, outcome)
);

-- R24: a notice to an inviter counts for its recipient's mailbox and domain like any
-- mail, but not against the partner's daily invitations.
ALTER TABLE mail_quota ADD COLUMN notice boolean NOT NULL DEFAULT false;
