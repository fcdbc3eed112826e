-- recbot state, version 1. Times are RFC 3339 UTC text.

-- The desired state: what operators asked to watch.
CREATE TABLE watches (
    name      TEXT PRIMARY KEY NOT NULL,   -- Twitch login or HLS source name, [a-z0-9_]{1,25}
    source    TEXT NOT NULL,               -- 'twitch' | 'hls'
    hls_url   TEXT,                        -- playlist address when source = 'hls'
    quality   TEXT NOT NULL,
    upload    INTEGER NOT NULL,            -- 0/1
    chat      INTEGER NOT NULL,            -- 0/1
    room      TEXT NOT NULL,               -- where it was added: 'console', 'slack:C…', 'discord:…'
    added_by  TEXT NOT NULL,
    added_at  TEXT NOT NULL
);

-- One live broadcast of a login (a Twitch stream id); a recording has one or more parts.
CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    stream_id   TEXT,
    title       TEXT,
    game        TEXT,
    started_at  TEXT NOT NULL,
    ended_at    TEXT
);
CREATE INDEX sessions_by_name ON sessions (name, started_at);

CREATE TABLE parts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id     INTEGER NOT NULL REFERENCES sessions (id),
    part_no        INTEGER NOT NULL,
    path           TEXT NOT NULL,           -- final file name; '<path>.part' while recording
    state          TEXT NOT NULL,           -- 'recording' | 'finished' | 'failed'
    recovered      INTEGER NOT NULL DEFAULT 0,
    started_at     TEXT NOT NULL,
    ended_at       TEXT,
    bytes          INTEGER NOT NULL DEFAULT 0,
    duration_secs  REAL NOT NULL DEFAULT 0,
    gaps           INTEGER NOT NULL DEFAULT 0,
    UNIQUE (session_id, part_no)
);

-- Uploads to YouTube: a persistent queue that survives restarts.
CREATE TABLE upload_jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    part_id          INTEGER REFERENCES parts (id),
    path             TEXT NOT NULL,
    state            TEXT NOT NULL,        -- 'queued' | 'uploading' | 'deferred' | 'paused' | 'finished' | 'failed'
    session_uri      TEXT,                 -- resumable upload session
    confirmed_bytes  INTEGER NOT NULL DEFAULT 0,
    total_bytes      INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    video_id         TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX upload_jobs_by_state ON upload_jobs (state, next_attempt_at);

-- OAuth tokens per service ('youtube', 'twitch'); never logged or shown.
CREATE TABLE oauth_tokens (
    service        TEXT PRIMARY KEY NOT NULL,
    access_token   TEXT NOT NULL,
    refresh_token  TEXT,
    expires_at     TEXT,
    scopes         TEXT,
    updated_at     TEXT NOT NULL
);

-- Everything that happened, including the audit trail of commands.
CREATE TABLE events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    kind     TEXT NOT NULL,
    name     TEXT,
    payload  TEXT NOT NULL                 -- the Event as JSON
);
CREATE INDEX events_by_name ON events (name, id);
