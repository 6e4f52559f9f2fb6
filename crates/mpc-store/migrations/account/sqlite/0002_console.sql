-- The operator console's searches: an account by its Ethereum address (derived from the public
-- key, so stored to be found by an index; rows from before this migration are filled in when the
-- store opens), and the sessions newest first under any filter.
ALTER TABLE accounts ADD COLUMN ethereum_address TEXT;          -- 0x + 40 lower-case hex

CREATE INDEX accounts_by_address ON accounts (ethereum_address);
CREATE INDEX account_sessions_by_created ON account_sessions (created_at, session_id);
