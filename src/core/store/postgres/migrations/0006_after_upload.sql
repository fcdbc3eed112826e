-- recbot state, version 6 (PostgreSQL twin of sqlite/migrations/0006_after_upload.sql): with
-- after_upload = "delete" a finished job's files are deleted only once YouTube reports the
-- video processed; the wait is persisted so it survives restarts.

-- NULL: nothing to do after the upload (or done at once) | 'waiting' | 'done' | 'kept'.
ALTER TABLE upload_jobs ADD COLUMN cleanup TEXT;
-- When to ask YouTube next (while 'waiting').
ALTER TABLE upload_jobs ADD COLUMN cleanup_at TIMESTAMPTZ;
-- After this, a video still not processed keeps its files.
ALTER TABLE upload_jobs ADD COLUMN cleanup_until TIMESTAMPTZ;
-- Checks made so far (the wait between them doubles).
ALTER TABLE upload_jobs ADD COLUMN cleanup_checks BIGINT NOT NULL DEFAULT 0;
CREATE INDEX upload_jobs_by_cleanup ON upload_jobs (cleanup, cleanup_at);
