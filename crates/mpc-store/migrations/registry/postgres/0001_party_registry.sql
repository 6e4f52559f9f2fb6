-- The party registry (kept in the coordinator's database, so that its replicas share it): every
-- server party and Server Party API announces itself here at start and then at every heartbeat.
-- Times are milliseconds since the epoch (UTC).
CREATE TABLE mpc_party_registry (
    party_id            TEXT PRIMARY KEY,
    kind                TEXT NOT NULL CHECK (kind IN ('server', 'party_api')),
    identity_public_key BYTEA NOT NULL,
    version             TEXT NOT NULL,
    active_sessions     BIGINT NOT NULL,
    registered_at_ms    BIGINT NOT NULL,
    last_seen_ms        BIGINT NOT NULL
);
