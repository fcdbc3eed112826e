-- recbot state, version 8: small values the service keeps between runs, by key (the EventSub
-- conduit id, so a restart reuses the conduit and its subscriptions).
CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
