-- Account Service: accounts and share metadata (integration guide §2.1, with the columns the
-- design adds), the sessions it started, API keys, idempotency keys and the audit log (§7.3).

CREATE TABLE accounts (
    id UUID PRIMARY KEY,
    username VARCHAR(255) UNIQUE,           -- optional; unique when given
    email VARCHAR(255) UNIQUE,              -- optional; unique when given
    public_key BYTEA,                       -- the group key; NULL until the keygen completes
    threshold_n INT NOT NULL,
    threshold_t INT NOT NULL,
    status VARCHAR(50) NOT NULL,            -- pending / active / suspended / failed
    created_at TIMESTAMPTZ NOT NULL,
    keygen_session_id UUID,
    failure_reason TEXT,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX accounts_by_created ON accounts (created_at, id);

-- Where each share lives, never the share itself.
CREATE TABLE account_shares (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    share_type VARCHAR(50) NOT NULL,        -- user_device / server / recovery
    party_id VARCHAR(255) NOT NULL,
    party_index INT NOT NULL,
    device_type VARCHAR(50),                -- android / ios / server / recovery
    storage_location VARCHAR(255),
    is_active BOOLEAN NOT NULL DEFAULT true,
    created_at TIMESTAMPTZ NOT NULL,
    session_id UUID                         -- the keygen or recovery that created it
);

-- At most one active share per index and per party of an account.
CREATE UNIQUE INDEX account_shares_active_index ON account_shares (account_id, party_index)
    WHERE is_active;
CREATE UNIQUE INDEX account_shares_active_party ON account_shares (account_id, party_id)
    WHERE is_active;

-- Every session the service started, so that each outcome is applied exactly once.
CREATE TABLE account_sessions (
    session_id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    session_type VARCHAR(50) NOT NULL,      -- keygen / sign / refresh / recovery
    status VARCHAR(50) NOT NULL,            -- pending / completed / failed / expired
    lost_party_id VARCHAR(255),             -- recovery
    new_party_id VARCHAR(255),              -- recovery
    new_device_type VARCHAR(50),            -- recovery
    failure_reason TEXT,
    blamed_party VARCHAR(255),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX account_sessions_pending ON account_sessions (created_at) WHERE status = 'pending';
CREATE INDEX account_sessions_by_account ON account_sessions (account_id, created_at);

CREATE TABLE api_keys (
    id UUID PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    key_hash BYTEA NOT NULL UNIQUE,         -- SHA-256 of the key; the key itself is never stored
    prefix VARCHAR(32) NOT NULL,            -- the first characters, for people to tell keys apart
    scope VARCHAR(50) NOT NULL,             -- admin / operator
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);

-- A retried keygen or sign with the same Idempotency-Key gets the first response back.
CREATE TABLE idempotency_keys (
    api_key_id VARCHAR(64) NOT NULL,
    route VARCHAR(100) NOT NULL,
    idempotency_key VARCHAR(255) NOT NULL,
    request_hash BYTEA NOT NULL,            -- SHA-256 of the request body
    response_status INT,                    -- NULL while the first request is in progress
    response_body TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (api_key_id, route, idempotency_key)
);

CREATE INDEX idempotency_keys_by_created ON idempotency_keys (created_at);

-- Integration guide §7.3. session_id is NULL for requests that concern no session (a 401, an
-- API key created); user_id is the caller's API key id.
CREATE TABLE mpc_audit_logs (
    id BIGSERIAL PRIMARY KEY,
    session_id UUID,
    operation VARCHAR(50) NOT NULL,
    user_id VARCHAR(255),
    ip_address INET,
    user_agent TEXT,
    request_body JSONB,                     -- secrets (shares, tokens, keys) redacted
    response_status INT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    account_id UUID
);

CREATE INDEX mpc_audit_logs_by_created ON mpc_audit_logs (created_at);
CREATE INDEX mpc_audit_logs_by_session ON mpc_audit_logs (session_id);
CREATE INDEX mpc_audit_logs_failures ON mpc_audit_logs (created_at) WHERE response_status >= 400;
