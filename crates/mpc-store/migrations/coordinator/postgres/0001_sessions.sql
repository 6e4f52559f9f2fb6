-- Session Coordinator: sessions and participants (integration guide §2.2, with the columns the
-- design adds), and the outbox of events waiting to be published.

CREATE TABLE mpc_sessions (
    id UUID PRIMARY KEY,
    session_type VARCHAR(50) NOT NULL,      -- keygen / sign / refresh / recovery
    threshold_n INT NOT NULL,
    threshold_t INT NOT NULL,
    status VARCHAR(50) NOT NULL,
    message_hash BYTEA,                     -- sign: the 32-byte hash to sign
    public_key BYTEA,                       -- the group key (65 bytes, uncompressed SEC1)
    signature BYTEA,                        -- sign, once completed: r || s || v (65 bytes)
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    key_id VARCHAR(255) NOT NULL,           -- the account id
    signature_der BYTEA,
    recovery_target VARCHAR(255),
    recovery_helpers TEXT,                  -- JSON array of party ids
    failure_reason TEXT,
    blamed_party VARCHAR(255),
    updated_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ
);

-- The expiry sweep and the active-sessions gauge look only at sessions that can still change.
CREATE INDEX mpc_sessions_active_by_expiry ON mpc_sessions (expires_at)
    WHERE status IN ('created', 'waiting', 'in_progress');
CREATE INDEX mpc_sessions_key_id ON mpc_sessions (key_id);

CREATE TABLE session_participants (
    id UUID PRIMARY KEY,
    session_id UUID NOT NULL REFERENCES mpc_sessions (id) ON DELETE CASCADE,
    party_id VARCHAR(255) NOT NULL,
    party_index INT NOT NULL,
    status VARCHAR(50) NOT NULL,
    device_type VARCHAR(50),
    joined_at TIMESTAMPTZ,
    identity_public_key BYTEA,              -- Ed25519, registered on join
    session_key BYTEA,                      -- signed session-key announcement, opaque
    reported_public_key BYTEA,
    reported_signature BYTEA,               -- r || s || v
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (session_id, party_id),
    UNIQUE (session_id, party_index)
);

CREATE TABLE coordinator_outbox (
    id BIGSERIAL PRIMARY KEY,
    event_id UUID NOT NULL UNIQUE,
    session_id UUID NOT NULL,
    routing_key VARCHAR(100) NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    claimed_until TIMESTAMPTZ NOT NULL,
    attempts INT NOT NULL DEFAULT 0
);

CREATE INDEX coordinator_outbox_claimable ON coordinator_outbox (claimed_until, id);
