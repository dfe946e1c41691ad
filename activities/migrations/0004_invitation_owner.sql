-- The workflow that runs each invitation: its own `invitation-{id}`, or, for a first
-- admin invited since 2026-11-24, its partner's `partner-onboarding-{partner_id}`
-- (one workflow per onboarding). The pages and the API address the invitation there.

ALTER TABLE invitations ADD COLUMN workflow_id text;
UPDATE invitations SET workflow_id = 'invitation-' || id;
ALTER TABLE invitations ALTER COLUMN workflow_id SET NOT NULL;
