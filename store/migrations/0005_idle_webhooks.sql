-- An idle webhook endpoint costs nothing (issue 29): its workflow sleeps on a timer of a
-- day, flagged here; the worker's listener wakes only the sleeping endpoints of the
-- enterprise whose event committed (and the portal-wide one), each with one signal.
ALTER TABLE webhook_endpoints ADD COLUMN sleeping boolean NOT NULL DEFAULT false;
CREATE INDEX webhook_endpoints_sleeping ON webhook_endpoints (enterprise_id) WHERE sleeping;
