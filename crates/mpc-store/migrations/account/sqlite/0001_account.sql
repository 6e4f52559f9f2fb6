-- Account Service: accounts and share metadata (integration guide §2.1, with the columns the
-- design adds), the sessions it started, API keys, idempotency keys and the audit log (§7.3).
-- UUIDs are TEXT (hyphenated, lower case); timestamps are INTEGER milliseconds since the Unix
-- epoch (UTC), so that comparisons are exact.

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    username TEXT UNIQUE,                   -- optional; unique when given
    email TEXT UNIQUE,                      -- optional; unique when given
    public_key BLOB,                        -- the group key; NULL until the keygen completes
    threshold_n INTEGER NOT NULL,
    threshold_t INTEGER NOT NULL,
    status TEXT NOT NULL,                   -- pending / active / suspended / failed
    created_at INTEGER NOT NULL,
    keygen_session_id TEXT,
    failure_reason TEXT,
    updated_at INTEGER NOT NULL
);

CREATE INDEX accounts_by_created ON accounts (created_at, id);

CREATE TABLE account_shares (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    share_type TEXT NOT NULL,               -- user_device / server / recovery
    party_id TEXT NOT NULL,
    party_index INTEGER NOT NULL,
    device_type TEXT,
    storage_location TEXT,
    is_active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    session_id TEXT
);

CREATE UNIQUE INDEX account_shares_active_index ON account_shares (account_id, party_index)
    WHERE is_active;
CREATE UNIQUE INDEX account_shares_active_party ON account_shares (account_id, party_id)
    WHERE is_active;

CREATE TABLE account_sessions (
    session_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    session_type TEXT NOT NULL,
    status TEXT NOT NULL,                   -- pending / completed / failed / expired
    lost_party_id TEXT,
    new_party_id TEXT,
    new_device_type TEXT,
    failure_reason TEXT,
    blamed_party TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX account_sessions_pending ON account_sessions (created_at) WHERE status = 'pending';
CREATE INDEX account_sessions_by_account ON account_sessions (account_id, created_at);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash BLOB NOT NULL UNIQUE,          -- SHA-256 of the key; the key itself is never stored
    prefix TEXT NOT NULL,
    scope TEXT NOT NULL,                    -- admin / operator
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    last_used_at INTEGER
);

CREATE TABLE idempotency_keys (
    api_key_id TEXT NOT NULL,
    route TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    response_status INTEGER,                -- NULL while the first request is in progress
    response_body TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, route, idempotency_key)
);

CREATE INDEX idempotency_keys_by_created ON idempotency_keys (created_at);

CREATE TABLE mpc_audit_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT,
    operation TEXT NOT NULL,
    user_id TEXT,
    ip_address TEXT,
    user_agent TEXT,
    request_body TEXT,                      -- JSON, secrets redacted
    response_status INTEGER,
    created_at INTEGER NOT NULL,
    account_id TEXT
);

CREATE INDEX mpc_audit_logs_by_created ON mpc_audit_logs (created_at);
CREATE INDEX mpc_audit_logs_by_session ON mpc_audit_logs (session_id);
