//! Which node owns which watched login, when several recbot nodes share one state database
//! (`[cluster]`): the nodes' heartbeats and the leases, each with a fencing number that grows
//! with every new owner. Times are Unix milliseconds passed in by the caller, so the rules are
//! testable without waiting and the SQL is the same on both engines.

use anyhow::Result;
use recbot_commands::Login;

/// A node as its heartbeats left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub node_id: String,
    pub capacity: Option<u32>,
    pub started_ms: i64,
    pub seen_ms: i64,
    /// Past this (without a renewal) the node counts as gone and its logins are free.
    pub expires_ms: i64,
    /// Stopped cleanly: it handed its logins over.
    pub stopped: bool,
    /// Leases it holds that have not run out.
    pub leases: u64,
}

impl NodeRow {
    pub fn alive(&self, now_ms: i64) -> bool {
        !self.stopped && self.expires_ms >= now_ms
    }
}

/// One login's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub login: Login,
    /// `None` once released.
    pub owner: Option<String>,
    pub fence: i64,
    pub expires_ms: i64,
    pub taken_ms: i64,
}

impl Lease {
    /// The node that owns the login at `now_ms`, if any.
    pub fn owner_at(&self, now_ms: i64) -> Option<&str> {
        self.owner.as_deref().filter(|_| self.expires_ms >= now_ms)
    }
}

/// Nodes and leases.
#[async_trait::async_trait]
pub trait Leases: Send + Sync {
    /// The node says it is alive (inserting its row, or starting a new run of it when
    /// `started_ms` differs) and renews every lease it holds that has not run out, in one
    /// transaction; returns the logins it still holds with their fences. A lease that ran out
    /// is not renewed: the node must claim it again, with a new fence.
    async fn heartbeat(
        &self,
        node: &str,
        capacity: Option<u32>,
        started_ms: i64,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Vec<(Login, i64)>>;

    /// Takes `login` for `node` when nobody holds it (never owned, released, or run out):
    /// the new fence, or `None` when another node holds it.
    async fn claim(
        &self,
        node: &str,
        login: &Login,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<i64>>;

    /// Gives up `login` if `node` holds it (the watch was removed, or the node is full).
    async fn release(&self, node: &str, login: &Login) -> Result<bool>;

    /// A clean stop: every lease of `node` released at once and the node marked stopped, so
    /// the others take its logins without waiting for the leases to run out.
    async fn leave(&self, node: &str, now_ms: i64) -> Result<u64>;

    /// Watched logins nobody holds at `now_ms`, by name.
    async fn unowned(&self, now_ms: i64) -> Result<Vec<Login>>;

    /// Whether the holder of `fence` still owns `login` at `now_ms`: what a write about the
    /// login checks, so a node that was paused past its lease cannot overwrite a newer owner.
    async fn holds(&self, login: &Login, fence: i64, now_ms: i64) -> Result<bool>;

    /// Who holds `login` at `now_ms`, with the fence: `None` when nobody does.
    async fn holder(&self, login: &Login, now_ms: i64) -> Result<Option<(String, i64)>>;

    /// Every node, by id, with the count of leases each holds at `now_ms`.
    async fn nodes(&self, now_ms: i64) -> Result<Vec<NodeRow>>;

    /// Every lease row, by login.
    async fn leases(&self) -> Result<Vec<Lease>>;
}
