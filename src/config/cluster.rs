//! `[cluster]`: this node's name and share when several recbot nodes use one PostgreSQL state
//! database (`[storage] database_url`): how long its leases on logins last and how many it may
//! record at once.

use std::time::Duration;

use serde::Deserialize;

use super::fail;

/// Longest node id: it is shown in `status`, the CLI and lease rows.
pub const MAX_NODE_ID_LEN: usize = 64;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// This node's name among the nodes (default: the host name).
    pub node_id: Option<String>,
    /// How long a node owns a login without renewing its lease; renewed every third of it.
    pub lease_secs: u64,
    /// Most logins this node records at once (absent: no limit).
    pub capacity: Option<u32>,
    /// `recordings_dir` is storage every node reads, so any node may upload any part.
    pub shared_recordings: bool,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            node_id: None,
            lease_secs: 30,
            capacity: None,
            shared_recordings: false,
        }
    }
}

impl Cluster {
    /// The node id: as configured, else the host name (else `recbot`).
    pub fn node_id(&self) -> String {
        if let Some(id) = &self.node_id {
            return id.clone();
        }
        // Linux's own answer (what `uname -n` prints); read once at start-up.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host = host.trim();
        match check_node_id(host) {
            Ok(()) => host.to_string(),
            Err(_) => "recbot".into(),
        }
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    /// How often the node renews its leases: a third of a lease, so two renewals may fail
    /// before the lease runs out.
    pub fn renew_every(&self) -> Duration {
        self.lease() / 3
    }

    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if let Some(id) = &self.node_id {
            check_node_id(id).map_err(|m| ("cluster.node_id".to_string(), m))?;
        }
        if !(3..=3600).contains(&self.lease_secs) {
            return fail(
                "cluster.lease_secs",
                "must be between 3 and 3600 seconds (renewed every third of it)",
            );
        }
        if self.capacity == Some(0) {
            return fail(
                "cluster.capacity",
                "must be at least 1 (leave it out for no limit)",
            );
        }
        Ok(())
    }

    /// The `check-config` line; `shared_db` tells whether other nodes can exist at all.
    pub fn summary(&self, shared_db: bool) -> String {
        if !shared_db {
            return "one node (SQLite state; [storage] database_url for several)".into();
        }
        let capacity = match self.capacity {
            Some(n) => format!("at most {n} logins"),
            None => "no login limit".into(),
        };
        format!(
            "node `{}`, leases {} s (renewed every {} s), {capacity}, recordings {}",
            self.node_id(),
            self.lease_secs,
            self.renew_every().as_secs_f64(),
            if self.shared_recordings {
                "shared by all nodes"
            } else {
                "on this node only"
            }
        )
    }
}

/// A node id: 1–64 of ASCII letters, digits, `.`, `_`, `-` (it names the node in chat and logs).
pub fn check_node_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_NODE_ID_LEN {
        return Err(format!(
            "must be 1 to {MAX_NODE_ID_LEN} characters (found {})",
            id.len()
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "may hold only letters, digits, `.`, `_` and `-`, found {bad:?}"
        ));
    }
    Ok(())
}
