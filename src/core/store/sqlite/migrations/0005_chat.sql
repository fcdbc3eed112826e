-- Chat logging: `status` looks up the last chat disconnect by event kind.
CREATE INDEX events_by_kind ON events (kind, id);
