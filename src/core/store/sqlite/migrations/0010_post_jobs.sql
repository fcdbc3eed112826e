-- recbot state, version 10: post-processing with ffmpeg ([postprocess]). A finished part's
-- job is a row until it ends (a restart starts a pending one over); the part's upload job
-- names it in post_job and is not taken while it does.
CREATE TABLE post_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    login TEXT,
    session_id INTEGER,
    video TEXT NOT NULL UNIQUE,
    sidecar TEXT,
    -- pending | finished | failed
    state TEXT NOT NULL,
    output TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

ALTER TABLE upload_jobs ADD COLUMN post_job INTEGER;
