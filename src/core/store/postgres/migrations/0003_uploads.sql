-- recbot state, version 3 (PostgreSQL twin of sqlite/migrations/0003_uploads.sql): what the
-- upload queue needs beyond version 1's upload_jobs, and the local YouTube quota ledger.

-- The watched login and broadcast a job belongs to (its events are posted in that thread).
ALTER TABLE upload_jobs ADD COLUMN name TEXT;
ALTER TABLE upload_jobs ADD COLUMN session_id BIGINT;
-- The part's sidecar (<name>.json): title, chapters, and where the video id is recorded.
ALTER TABLE upload_jobs ADD COLUMN sidecar TEXT;
-- Why a deferred job waits: 'retry' | 'quota' | 'upload_limit'.
ALTER TABLE upload_jobs ADD COLUMN wait_reason TEXT;
-- One job per file: a part reported twice is queued once.
CREATE UNIQUE INDEX upload_jobs_by_path ON upload_jobs (path);

-- Uploads started per Pacific-time day (YouTube's quota day), against daily_upload_limit.
CREATE TABLE upload_quota (
    day         TEXT PRIMARY KEY NOT NULL,   -- 'YYYY-MM-DD' in America/Los_Angeles
    used        BIGINT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
