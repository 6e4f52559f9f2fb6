-- Session Coordinator: sessions and participants (integration guide §2.2, with the columns the
-- design adds), and the outbox of events waiting to be published.
-- Timestamps are INTEGER milliseconds since the Unix epoch (UTC), so that comparisons are exact.

CREATE TABLE mpc_sessions (
    id BLOB PRIMARY KEY,                    -- UUID
    session_type TEXT NOT NULL,             -- keygen / sign / refresh / recovery
    threshold_n INTEGER NOT NULL,
    threshold_t INTEGER NOT NULL,
    status TEXT NOT NULL,
    message_hash BLOB,                      -- sign: the 32-byte hash to sign
    public_key BLOB,                        -- the group key (65 bytes, uncompressed SEC1)
    signature BLOB,                         -- sign, once completed: r || s || v (65 bytes)
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    key_id TEXT NOT NULL,                   -- the account id
    signature_der BLOB,
    recovery_target TEXT,
    recovery_helpers TEXT,                  -- JSON array of party ids
    failure_reason TEXT,
    blamed_party TEXT,
    updated_at INTEGER NOT NULL,
    completed_at INTEGER
);

CREATE INDEX mpc_sessions_active_by_expiry ON mpc_sessions (expires_at)
    WHERE status IN ('created', 'waiting', 'in_progress');
CREATE INDEX mpc_sessions_key_id ON mpc_sessions (key_id);

CREATE TABLE session_participants (
    id BLOB PRIMARY KEY,                    -- UUID
    session_id BLOB NOT NULL REFERENCES mpc_sessions (id) ON DELETE CASCADE,
    party_id TEXT NOT NULL,
    party_index INTEGER NOT NULL,
    status TEXT NOT NULL,
    device_type TEXT,
    joined_at INTEGER,
    identity_public_key BLOB,               -- Ed25519, registered on join
    session_key BLOB,                       -- signed session-key announcement, opaque
    reported_public_key BLOB,
    reported_signature BLOB,                -- r || s || v
    updated_at INTEGER NOT NULL,
    UNIQUE (session_id, party_id),
    UNIQUE (session_id, party_index)
);

CREATE TABLE coordinator_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id BLOB NOT NULL UNIQUE,
    session_id BLOB NOT NULL,
    routing_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    claimed_until INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX coordinator_outbox_claimable ON coordinator_outbox (claimed_until, id);
