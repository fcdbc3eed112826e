-- recbot state, version 11: what live detection saw of a recorded broadcast at each live
-- check (viewers, title, game), for its summary chart and `status`. At most one row per
-- live check of a live login that has a session; nothing for offline logins.
CREATE TABLE stream_samples (
    session INTEGER NOT NULL REFERENCES sessions (id),
    at TEXT NOT NULL,
    viewers INTEGER,
    title TEXT NOT NULL,
    game TEXT
);
CREATE INDEX stream_samples_by_session ON stream_samples (session, at);
