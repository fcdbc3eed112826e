-- PostgreSQL twin of sqlite/migrations/0014_cluster.sql: nodes sharing this database and
-- which node owns each watched login (times in Unix milliseconds from the nodes' clocks).
CREATE TABLE nodes (
    node_id    TEXT PRIMARY KEY NOT NULL,
    capacity   BIGINT,
    started_ms BIGINT NOT NULL,
    seen_ms    BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    stopped    BOOLEAN NOT NULL
);

CREATE TABLE leases (
    login      TEXT PRIMARY KEY NOT NULL,
    owner      TEXT,
    fence      BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    taken_ms   BIGINT NOT NULL
);
CREATE INDEX leases_by_owner ON leases (owner);

-- The node that queued an upload job (it recorded the file): with several nodes a node takes
-- only its own jobs and jobs of no node (queued by a single node before). NULL on one node.
ALTER TABLE upload_jobs ADD COLUMN node TEXT;
