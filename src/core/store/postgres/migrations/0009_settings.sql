-- PostgreSQL twin of sqlite/migrations/0009_settings.sql: small values the service keeps
-- between runs, by key (the EventSub conduit id).
CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
