-- The chat front-ends' outbox (version 4; PostgreSQL twin of sqlite/migrations/0004_outbox.sql).
-- Notices to post are the event log itself; these tables say how far each front-end has
-- delivered it and which chat messages it opened.

-- How far each front-end ('slack' | 'discord') has delivered the event log.
CREATE TABLE outbox_cursors (
    frontend       TEXT PRIMARY KEY NOT NULL,
    delivered_seq  BIGINT NOT NULL,             -- events.id of the last notice handled
    updated_at     TIMESTAMPTZ NOT NULL
);

-- Chat messages a front-end keeps coming back to: one thread per broadcast
-- ('thread:<room>:<session>') and one edited progress message per upload ('progress:<room>:<job>').
CREATE TABLE outbox_messages (
    frontend    TEXT NOT NULL,
    key         TEXT NOT NULL,
    channel     TEXT NOT NULL,                  -- where the message (or thread) lives
    message_id  TEXT NOT NULL,                  -- Slack ts, Discord message or thread id
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (frontend, key)
);
