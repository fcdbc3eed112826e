-- recbot state, version 8 (PostgreSQL twin of sqlite/migrations/0008_vod_fills.sql): sessions
-- whose gaps are still to be filled from the Twitch VOD (one row per session until its fill is
-- over, so a restart resumes it).
CREATE TABLE vod_fills (
    session BIGINT PRIMARY KEY REFERENCES sessions (id),
    login TEXT NOT NULL,
    -- When the fill was decided: waiting for the VOD ends vod_fill_wait_minutes after it.
    created_at TIMESTAMPTZ NOT NULL
);
