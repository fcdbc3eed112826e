-- recbot state, version 11 (PostgreSQL twin of sqlite/migrations/0011_stream_samples.sql):
-- what live detection saw of a recorded broadcast at each live check.
CREATE TABLE stream_samples (
    session BIGINT NOT NULL REFERENCES sessions (id),
    at TIMESTAMPTZ NOT NULL,
    viewers BIGINT,
    title TEXT NOT NULL,
    game TEXT
);
CREATE INDEX stream_samples_by_session ON stream_samples (session, at);
