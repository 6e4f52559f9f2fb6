-- Message Router storage. Payloads are opaque ciphertext; the router never reads them.

-- One row per session the router has seen: from its first envelope (deadline = the token's exp)
-- or from a session.completed/failed/expired event. `purged_at` marks a session whose envelopes
-- the retention sweep deleted: the row stays as a tombstone so that late readers get
-- "session not found" instead of an empty mailbox.
CREATE TABLE router_sessions (
    session_id UUID PRIMARY KEY,
    deadline   TIMESTAMPTZ NOT NULL,
    ended_at   TIMESTAMPTZ,
    purged_at  TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE router_messages (
    message_id  UUID PRIMARY KEY,
    session_id  UUID NOT NULL REFERENCES router_sessions (session_id),
    from_party  TEXT NOT NULL,
    -- NULL for a broadcast.
    to_party    TEXT,
    round       BIGINT NOT NULL,
    payload     BYTEA NOT NULL,
    -- Kept beside the payload so that paging by size never reads payloads.
    payload_len BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX router_messages_session ON router_messages (session_id);

-- One row per (message, recipient), numbered per recipient without gaps.
CREATE TABLE router_deliveries (
    session_id UUID NOT NULL,
    recipient  TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    message_id UUID NOT NULL REFERENCES router_messages (message_id) ON DELETE CASCADE,
    PRIMARY KEY (session_id, recipient, seq)
);

CREATE INDEX router_deliveries_message ON router_deliveries (message_id);

-- The last seq given to each mailbox. Incremented inside the inserting transaction, so the row
-- lock serialises concurrent senders (also across router replicas) and a rolled-back insert
-- leaves no gap.
CREATE TABLE router_sequences (
    session_id UUID NOT NULL,
    recipient  TEXT NOT NULL,
    last_seq   BIGINT NOT NULL,
    PRIMARY KEY (session_id, recipient)
);
