-- Chat logging (PostgreSQL twin of sqlite/migrations/0005_chat.sql): `status` looks up the
-- last chat disconnect by event kind.
CREATE INDEX events_by_kind ON events (kind, id);
