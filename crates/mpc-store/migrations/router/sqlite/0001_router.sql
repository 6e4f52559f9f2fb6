-- Message Router storage (SQLite). Same shape as the PostgreSQL schema; ids are TEXT (UUID,
-- hyphenated) and times INTEGER milliseconds since the Unix epoch, so comparisons are exact.

CREATE TABLE router_sessions (
    session_id    TEXT PRIMARY KEY NOT NULL,
    deadline_ms   INTEGER NOT NULL,
    ended_at_ms   INTEGER,
    purged_at_ms  INTEGER,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE router_messages (
    message_id    TEXT PRIMARY KEY NOT NULL,
    session_id    TEXT NOT NULL REFERENCES router_sessions (session_id),
    from_party    TEXT NOT NULL,
    to_party      TEXT,
    round         INTEGER NOT NULL,
    payload       BLOB NOT NULL,
    payload_len   INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE INDEX router_messages_session ON router_messages (session_id);

CREATE TABLE router_deliveries (
    session_id TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    message_id TEXT NOT NULL REFERENCES router_messages (message_id) ON DELETE CASCADE,
    PRIMARY KEY (session_id, recipient, seq)
);

CREATE INDEX router_deliveries_message ON router_deliveries (message_id);

CREATE TABLE router_sequences (
    session_id TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    last_seq   INTEGER NOT NULL,
    PRIMARY KEY (session_id, recipient)
);
