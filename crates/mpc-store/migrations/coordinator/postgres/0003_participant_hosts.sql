-- The registered process that runs each joined participant's protocol (a server party, or the
-- Server Party API for a device) and its instance: when that process restarts or stops
-- heartbeating, the coordinator fails the sessions it was running at once.
ALTER TABLE session_participants ADD COLUMN host_party VARCHAR(255);
ALTER TABLE session_participants ADD COLUMN host_instance VARCHAR(64);
CREATE INDEX session_participants_host ON session_participants (host_party)
    WHERE host_party IS NOT NULL;
