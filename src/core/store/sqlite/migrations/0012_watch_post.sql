-- recbot state, version 12: a login's own post-processing (`add … post=`), NULL following
-- [postprocess] mode; a post-processing job keeps the mode it was started with, so a restart
-- (or a changed default) finishes it alike. NULL mode: a job from before version 12.
ALTER TABLE watches ADD COLUMN post TEXT;
ALTER TABLE post_jobs ADD COLUMN mode TEXT;
