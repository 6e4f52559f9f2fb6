-- Storage of one server party. Each party has its own database or schema: no party can read
-- another's rows. Secrets (the identity key, key shares) are stored only sealed with the party's
-- key-encryption key (AES-256-GCM, AAD-bound to key id, party id and index); `kek_id` says
-- which KEK, so that a rotation can find what it still has to re-seal.

-- The party's long-term Ed25519 identity key: one row.
CREATE TABLE party_identity (
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    party_id   TEXT NOT NULL,
    -- Hex of the 32-byte public key (what the other parties pin).
    public_key TEXT NOT NULL,
    sealed_key BYTEA NOT NULL,
    kek_id     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Key shares: pending (stored before the party reports), active (the session completed),
-- retired (replaced by a refresh or recovery; its ciphertext is erased).
CREATE TABLE party_key_shares (
    id           UUID PRIMARY KEY,
    key_id       TEXT NOT NULL,
    party_id     TEXT NOT NULL,
    party_index  INTEGER NOT NULL,
    threshold_t  INTEGER NOT NULL,
    threshold_n  INTEGER NOT NULL,
    -- Hex of the 65-byte uncompressed group key (04…).
    public_key   TEXT NOT NULL,
    -- The session that made the share.
    session_id   UUID NOT NULL UNIQUE,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'active', 'retired')),
    -- NULL once retired.
    sealed_share BYTEA,
    kek_id       TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    activated_at TIMESTAMPTZ,
    retired_at   TIMESTAMPTZ,
    CHECK ((status = 'retired') = (sealed_share IS NULL)),
    CHECK ((sealed_share IS NULL) = (kek_id IS NULL))
);

-- At most one active share per key.
CREATE UNIQUE INDEX party_key_shares_one_active ON party_key_shares (key_id) WHERE status = 'active';
CREATE INDEX party_key_shares_kek ON party_key_shares (kek_id) WHERE kek_id IS NOT NULL;

-- Sessions this party has handled (so a redelivered event is a no-op), and how they ended.
CREATE TABLE party_sessions (
    session_id   UUID PRIMARY KEY,
    session_type TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    -- 'running' while this party works on it, 'finished' once it reported or gave up, 'unseen'
    -- for a session whose end this party learned before (or without) working on it.
    local_state  TEXT NOT NULL CHECK (local_state IN ('unseen', 'running', 'finished')),
    -- How the session ended at the coordinator: NULL until then.
    outcome      TEXT CHECK (outcome IN ('completed', 'failed', 'expired')),
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- Keys frozen for a party that failed a protocol check which requires excluding it (DKLs23).
CREATE TABLE party_key_bans (
    key_id     TEXT NOT NULL,
    party_id   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    session_id UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (key_id, party_id)
);
