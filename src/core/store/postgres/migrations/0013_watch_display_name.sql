-- recbot state, version 13 (PostgreSQL twin of sqlite/migrations/0013_watch_display_name.sql):
-- platform keys as watch-list names, and the channel's display name looked up when added.
ALTER TABLE watches ADD COLUMN display_name TEXT;
