-- The columns take PostgreSQL's names, so that one set of SQL serves both backends. Only the
-- names change: times stay INTEGER milliseconds since the Unix epoch, ids hyphenated TEXT.

ALTER TABLE router_sessions RENAME COLUMN deadline_ms TO deadline;
ALTER TABLE router_sessions RENAME COLUMN ended_at_ms TO ended_at;
ALTER TABLE router_sessions RENAME COLUMN purged_at_ms TO purged_at;
ALTER TABLE router_sessions RENAME COLUMN created_at_ms TO created_at;
ALTER TABLE router_messages RENAME COLUMN created_at_ms TO created_at;
