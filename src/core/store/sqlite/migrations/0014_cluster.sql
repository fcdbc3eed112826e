-- recbot state, version 14: nodes sharing one state database ([cluster]) and which node owns
-- each watched login. Times are Unix milliseconds from the nodes' clocks (kept in step by
-- NTP; a lease is tens of seconds, so a skew of a few hundred milliseconds does not matter).
CREATE TABLE nodes (
    node_id    TEXT PRIMARY KEY NOT NULL,
    capacity   INTEGER,                 -- most logins it records at once; NULL: no limit
    started_ms INTEGER NOT NULL,        -- when this run of the node joined
    seen_ms    INTEGER NOT NULL,        -- its last renewal
    expires_ms INTEGER NOT NULL,        -- seen_ms + its lease: past this it counts as gone
    stopped    INTEGER NOT NULL         -- 1 after a clean stop (its logins handed over)
);

-- One row per login ever owned. `fence` grows by one with every new owner: writes about the
-- login carry the owner's fence and are refused once a newer one exists.
CREATE TABLE leases (
    login      TEXT PRIMARY KEY NOT NULL,
    owner      TEXT,                    -- NULL: released
    fence      INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    taken_ms   INTEGER NOT NULL
);
CREATE INDEX leases_by_owner ON leases (owner);

-- The node that queued an upload job (it recorded the file): with several nodes a node takes
-- only its own jobs and jobs of no node (queued by a single node before). NULL on one node.
ALTER TABLE upload_jobs ADD COLUMN node TEXT;
