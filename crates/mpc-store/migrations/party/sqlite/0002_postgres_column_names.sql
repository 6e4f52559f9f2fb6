-- The columns take PostgreSQL's names, so that one set of SQL serves both backends. Only the
-- names change: times stay INTEGER milliseconds since the Unix epoch, ids hyphenated TEXT.

ALTER TABLE party_identity RENAME COLUMN created_at_ms TO created_at;
ALTER TABLE party_identity RENAME COLUMN updated_at_ms TO updated_at;
ALTER TABLE party_key_shares RENAME COLUMN created_at_ms TO created_at;
ALTER TABLE party_key_shares RENAME COLUMN updated_at_ms TO updated_at;
ALTER TABLE party_key_shares RENAME COLUMN activated_at_ms TO activated_at;
ALTER TABLE party_key_shares RENAME COLUMN retired_at_ms TO retired_at;
ALTER TABLE party_sessions RENAME COLUMN created_at_ms TO created_at;
ALTER TABLE party_sessions RENAME COLUMN updated_at_ms TO updated_at;
ALTER TABLE party_key_bans RENAME COLUMN created_at_ms TO created_at;
