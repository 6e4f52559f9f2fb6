-- Storage of one server party (SQLite). Same shape as the PostgreSQL schema; ids are TEXT
-- (hyphenated UUIDs) and times INTEGER milliseconds since the Unix epoch.

CREATE TABLE party_identity (
    singleton     INTEGER PRIMARY KEY NOT NULL DEFAULT 1 CHECK (singleton = 1),
    party_id      TEXT NOT NULL,
    public_key    TEXT NOT NULL,
    sealed_key    BLOB NOT NULL,
    kek_id        TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

CREATE TABLE party_key_shares (
    id              TEXT PRIMARY KEY NOT NULL,
    key_id          TEXT NOT NULL,
    party_id        TEXT NOT NULL,
    party_index     INTEGER NOT NULL,
    threshold_t     INTEGER NOT NULL,
    threshold_n     INTEGER NOT NULL,
    public_key      TEXT NOT NULL,
    session_id      TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'active', 'retired')),
    sealed_share    BLOB,
    kek_id          TEXT,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    activated_at_ms INTEGER,
    retired_at_ms   INTEGER,
    CHECK ((status = 'retired') = (sealed_share IS NULL)),
    CHECK ((sealed_share IS NULL) = (kek_id IS NULL))
);

CREATE UNIQUE INDEX party_key_shares_one_active ON party_key_shares (key_id) WHERE status = 'active';
CREATE INDEX party_key_shares_kek ON party_key_shares (kek_id) WHERE kek_id IS NOT NULL;

CREATE TABLE party_sessions (
    session_id    TEXT PRIMARY KEY NOT NULL,
    session_type  TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    local_state   TEXT NOT NULL CHECK (local_state IN ('unseen', 'running', 'finished')),
    outcome       TEXT CHECK (outcome IN ('completed', 'failed', 'expired')),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

CREATE TABLE party_key_bans (
    key_id        TEXT NOT NULL,
    party_id      TEXT NOT NULL,
    reason        TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (key_id, party_id)
);
