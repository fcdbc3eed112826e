-- recbot state, version 13: watch-list names may be platform keys (`chzzk:<32 hex>`,
-- `bilibili:<room>`; source 'chzzk' | 'bilibili'), and an entry keeps the channel's display
-- name as the platform gave it when it was added (NULL: not looked up, as for Twitch and
-- HLS sources).
ALTER TABLE watches ADD COLUMN display_name TEXT;
