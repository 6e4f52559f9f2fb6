-- Webhooks (issue 13 §3): endpoints registered by an API key, the sessions each key started (so
-- that an outcome goes only to the webhooks of the key that started the session), and the
-- outbox of deliveries with their attempts. A delivery row is written before its first attempt
-- and claimed by a worker with a lease, so a restart or a second replica loses none and does
-- not send one twice at the same time. Independent of migration 0003.

CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    api_key_id TEXT NOT NULL,               -- the API key id (or 'bootstrap') that owns it
    url TEXT NOT NULL,
    events TEXT NOT NULL,                   -- ',session.completed,account.activated,' (commas around each)
    secret_sealed BLOB NOT NULL,           -- nonce || XChaCha20-Poly1305(secret), never the plaintext
    created_at INTEGER NOT NULL
);

CREATE INDEX webhooks_by_key ON webhooks (api_key_id, created_at);

CREATE TABLE webhook_session_owners (
    session_id TEXT PRIMARY KEY,
    api_key_id TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,                    -- also the event_id sent to the receiver
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    session_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    body TEXT NOT NULL,                     -- the exact JSON sent (and signed) on every attempt
    status TEXT NOT NULL,                   -- pending / delivered / failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (webhook_id, session_id, event)  -- an outcome applied twice enqueues once
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    attempted_at INTEGER NOT NULL,
    status_code INTEGER,                        -- NULL: no answer (timeout, connection refused)
    error TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
