-- recbot state, version 12 (PostgreSQL twin of sqlite/migrations/0012_watch_post.sql): a
-- login's own post-processing, and the mode a post-processing job was started with.
ALTER TABLE watches ADD COLUMN post TEXT;
ALTER TABLE post_jobs ADD COLUMN mode TEXT;
