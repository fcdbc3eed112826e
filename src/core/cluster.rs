//! This node's membership among recbot nodes sharing one state database (`[cluster]`): a
//! tracked task that renews its heartbeat and leases every third of a lease, takes logins
//! nobody holds (its fair share first, so the least-loaded nodes fill up first, never more
//! than `capacity`), releases the leases of logins no longer watched, and on a clean stop
//! hands every login over at once. What it holds (login → fence) is published on a watch
//! channel: the logins this node may record, and the fence each write about them carries.
//!
//! The core side: with a PostgreSQL state database the core joins at start-up
//! ([`Core::join_cluster`]); its workers then run only the watched logins this node owns
//! ([`Core::owned_watches`]), follow every change of that set, and a worker's event about a
//! login another node now holds (this node lost the lease: it was paused or cut off past it,
//! and the new owner's fence is newer) is refused, not written
//! ([`Core::publish_worker_event`]). With SQLite there is one node and none of this runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use recbot_commands::Login;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::store::{NodeRow, Store, Watch};
use super::Core;
use crate::config::{Cluster, Database};
use crate::event::Event;

/// What this node holds: each owned login and its fence.
pub type Owned = Arc<BTreeMap<Login, i64>>;

/// The membership task's settings, from `[cluster]`.
#[derive(Debug, Clone)]
pub struct Membership {
    pub node_id: String,
    pub capacity: Option<u32>,
    pub lease: Duration,
    pub renew_every: Duration,
}

impl Membership {
    pub fn from_config(cluster: &Cluster) -> Membership {
        Membership {
            node_id: cluster.node_id(),
            capacity: cluster.capacity,
            lease: cluster.lease(),
            renew_every: cluster.renew_every(),
        }
    }
}

/// The running membership: what this node owns, as it changes.
#[derive(Debug, Clone)]
pub struct Node {
    pub node_id: String,
    owned: watch::Receiver<Owned>,
    /// Starts a round now (the watch list changed) instead of at the next tick.
    wake: Arc<tokio::sync::Notify>,
}

impl Node {
    /// The logins this node owns now, with their fences.
    pub fn owned(&self) -> Owned {
        self.owned.borrow().clone()
    }

    /// Runs a round at once: a login added here is taken without waiting for the next tick.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A receiver that sees every change of what this node owns.
    pub fn subscribe(&self) -> watch::Receiver<Owned> {
        self.owned.clone()
    }
}

/// Resolves when what this node owns changed; never without a membership.
pub(super) async fn owned_changed(owned: &mut Option<watch::Receiver<Owned>>) {
    if let Some(rx) = owned {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    *owned = None;
    std::future::pending::<()>().await
}

/// Events that only the owner of their login may write: what detection and recording report.
fn fenced(event: &Event) -> bool {
    let name = event.kind_name();
    event.login.is_some()
        && (name.starts_with("Recording")
            || name.starts_with("Live")
            || matches!(
                name,
                "StreamUpdated" | "StreamOffline" | "RenditionWithheld" | "AdBreak"
            ))
}

impl Core {
    /// Joins the nodes sharing a PostgreSQL state database (see the module doc).
    pub(super) async fn join_cluster(&mut self) {
        if !matches!(self.config.storage.database(), Database::Postgres { .. }) {
            return;
        }
        let membership = Membership::from_config(&self.config.cluster);
        tracing::info!(node = %membership.node_id, lease_secs = membership.lease.as_secs(), "joining the nodes sharing the state database");
        self.node = Some(start(
            self.store.clone(),
            membership,
            &self.workers,
            self.shutdown.child_token(),
        ));
    }

    /// This node's id when several nodes share the state, for what only it can do (upload
    /// the files it recorded).
    pub(super) fn node_id(&self) -> Option<String> {
        self.node.as_ref().map(|n| n.node_id.clone())
    }

    /// The watch list as far as this node runs it: all of it on a single node, else the
    /// logins it owns.
    pub(super) async fn owned_watches(&self) -> anyhow::Result<Vec<Watch>> {
        let mut watches = self.store.watches().await?;
        if let Some(node) = &self.node {
            let owned = node.owned();
            watches.retain(|w| owned.contains_key(&w.name));
        }
        Ok(watches)
    }

    /// Publishes a worker's event, unless another node holds the login's lease now (a newer
    /// owner: this node lost it, paused or cut off past its lease): then it is dropped
    /// (logged) and the login's recording stopped, so a node that wakes up after its lease ran
    /// out overwrites nothing its successor wrote. A login nobody holds yet (just added, its
    /// claim still to come) has no newer owner.
    pub(super) async fn publish_worker_event(&mut self, event: Event) {
        if let (Some(node), Some(login)) = (&self.node, &event.login) {
            if fenced(&event) {
                // This node's own lease, even one just claimed and not yet published to
                // `owned`, is no newer owner.
                let newer = match self.store.holder(login, now_ms()).await {
                    Ok(Some((owner, _))) => owner != node.node_id,
                    Ok(None) => false,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot check the lease; the event is written");
                        false
                    }
                };
                if newer {
                    tracing::warn!(node = %node.node_id, login = %login, kind = event.kind_name(), "refused: another node owns this login now");
                    self.stop_recording_of(login);
                    return;
                }
            }
        }
        self.publish(event).await;
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Starts the membership task. Its first round only announces the node (so nodes started
/// together see each other before they share out the logins); it claims from the second.
pub fn start(
    store: Store,
    membership: Membership,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> Node {
    let (tx, rx) = watch::channel(Owned::default());
    let wake = Arc::new(tokio::sync::Notify::new());
    let node = Node {
        node_id: membership.node_id.clone(),
        owned: rx,
        wake: wake.clone(),
    };
    tracker.spawn(run(store, membership, tx, wake, cancel));
    node
}

async fn run(
    store: Store,
    m: Membership,
    owned: watch::Sender<Owned>,
    wake: Arc<tokio::sync::Notify>,
    cancel: CancellationToken,
) {
    let started = now_ms();
    let lease_ms = i64::try_from(m.lease.as_millis()).unwrap_or(i64::MAX / 4);
    let mut first = true;
    let mut ticker = tokio::time::interval(m.renew_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
            // Not before the first round: that one only announces the node.
            _ = wake.notified(), if !first => {}
        }
        match round(&store, &m, started, lease_ms, !first).await {
            Ok(held) => {
                first = false;
                owned.send_if_modified(|now| {
                    if **now == held {
                        return false;
                    }
                    *now = Arc::new(held);
                    true
                });
            }
            // The database is away: what this node holds stays as it was until the leases
            // run out; then nothing may be written about them anyway (fencing).
            Err(e) => {
                tracing::warn!(node = %m.node_id, error = %e, "cannot renew this node's leases")
            }
        }
    }
    match store.leave(&m.node_id, now_ms()).await {
        Ok(n) => {
            tracing::info!(node = %m.node_id, released = n, "left the cluster; logins handed over")
        }
        Err(e) => {
            tracing::warn!(node = %m.node_id, error = %e, "cannot hand this node's logins over; they free up when the leases run out")
        }
    }
    owned.send_replace(Owned::default());
}

/// One round: heartbeat and renewals, leases of unwatched logins released, then (when
/// `claim`) logins nobody holds taken up to this node's share. Returns what it holds.
async fn round(
    store: &Store,
    m: &Membership,
    started: i64,
    lease_ms: i64,
    claim: bool,
) -> anyhow::Result<BTreeMap<Login, i64>> {
    let now = now_ms();
    let mut held: BTreeMap<Login, i64> = store
        .heartbeat(&m.node_id, m.capacity, started, now, lease_ms)
        .await?
        .into_iter()
        .collect();
    let watched: BTreeSet<Login> = store.watches().await?.into_iter().map(|w| w.name).collect();
    for login in held
        .keys()
        .filter(|l| !watched.contains(*l))
        .cloned()
        .collect::<Vec<_>>()
    {
        store.release(&m.node_id, &login).await?;
        held.remove(&login);
    }
    if !claim {
        return Ok(held);
    }
    let unowned = store.unowned(now).await?;
    if unowned.is_empty() {
        return Ok(held);
    }
    let nodes = store.nodes(now).await?;
    let want = share(
        &m.node_id,
        m.capacity,
        held.len(),
        unowned.len(),
        &nodes,
        now,
    );
    for login in unowned.into_iter().take(want) {
        if let Some(fence) = store.claim(&m.node_id, &login, now, lease_ms).await? {
            tracing::info!(node = %m.node_id, login = %login, fence, "took the login");
            held.insert(login, fence);
        }
    }
    Ok(held)
}

/// How many of `unowned` logins this node takes now: up to its fair share of all logins
/// among the live nodes (so the least-loaded fill up first), or all it has room for when no
/// other live node has room; never beyond its capacity.
fn share(
    me: &str,
    capacity: Option<u32>,
    held: usize,
    unowned: usize,
    nodes: &[NodeRow],
    now: i64,
) -> usize {
    let room = capacity.map_or(usize::MAX, |c| (c as usize).saturating_sub(held));
    let others: Vec<&NodeRow> = nodes
        .iter()
        .filter(|n| n.node_id != me && n.alive(now))
        .collect();
    let others_have_room = others
        .iter()
        .any(|n| n.capacity.is_none_or(|c| (c as u64) > n.leases));
    if !others_have_room {
        return room.min(unowned);
    }
    let total = others.iter().map(|n| n.leases as usize).sum::<usize>() + held + unowned;
    let fair = total.div_ceil(others.len() + 1);
    fair.saturating_sub(held).min(room).min(unowned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use recbot_commands::{Quality, Source};

    /// Three nodes on one PostgreSQL database, with a 600 ms lease.
    struct Nodes {
        url: String,
        stores: Vec<Store>,
    }

    fn membership(id: &str) -> Membership {
        Membership {
            node_id: id.into(),
            capacity: None,
            lease: Duration::from_millis(600),
            renew_every: Duration::from_millis(200),
        }
    }

    impl Nodes {
        async fn new(logins: usize) -> Nodes {
            let url = crate::core::store::postgres_test_database().await;
            let mut stores = Vec::new();
            for _ in 0..3 {
                stores.push(
                    Store::open_postgres(
                        &crate::secret::Secret::new(url.clone()),
                        Duration::from_secs(10),
                    )
                    .await
                    .unwrap(),
                );
            }
            for i in 0..logins {
                stores[0]
                    .put_watch(&crate::core::store::Watch {
                        name: Login::parse(&format!("login{i}")).unwrap(),
                        source: Source::Twitch,
                        quality: Quality::BEST,
                        upload: false,
                        chat: false,
                        post: None,
                        room: crate::event::Room::Console,
                        added_by: "test".into(),
                        added_at: Utc::now(),
                        display_name: None,
                    })
                    .await
                    .unwrap();
            }
            Nodes { url, stores }
        }

        /// Node `i` running until `cancel` (a clean stop) or until its task is aborted (a
        /// crash: no hand-over).
        fn start(
            &self,
            i: usize,
            cancel: CancellationToken,
        ) -> (watch::Receiver<Owned>, tokio::task::JoinHandle<()>) {
            let (tx, rx) = watch::channel(Owned::default());
            let task = tokio::spawn(run(
                self.stores[i].clone(),
                membership(["a", "b", "c"][i]),
                tx,
                Arc::new(tokio::sync::Notify::new()),
                cancel,
            ));
            (rx, task)
        }
    }

    /// Waits (bounded) until `check` holds for what the nodes own.
    async fn until(
        what: &str,
        nodes: &[&watch::Receiver<Owned>],
        check: impl Fn(&[Owned]) -> bool,
    ) {
        for _ in 0..100 {
            let owned: Vec<Owned> = nodes.iter().map(|n| n.borrow().clone()).collect();
            if check(&owned) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let owned: Vec<Owned> = nodes.iter().map(|n| n.borrow().clone()).collect();
        panic!("{what}: never happened; owned {owned:?}");
    }

    #[tokio::test]
    async fn nodes_share_the_logins_take_over_a_dead_node_and_fence_it_out() {
        let nodes = Nodes::new(9).await;
        let _ = &nodes.url;
        let cancels: Vec<CancellationToken> = (0..3).map(|_| CancellationToken::new()).collect();
        let (a, a_task) = nodes.start(0, cancels[0].clone());
        let (b, _b_task) = nodes.start(1, cancels[1].clone());
        let (c, _c_task) = nodes.start(2, cancels[2].clone());
        until("three each", &[&a, &b, &c], |o| {
            o.iter().all(|n| n.len() == 3)
        })
        .await;
        // Nobody holds a login twice.
        let mut all: Vec<Login> = [&a, &b, &c]
            .iter()
            .flat_map(|n| n.borrow().keys().cloned().collect::<Vec<_>>())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 9);

        // a dies (no hand-over): after its lease b and c hold all nine, a's logins with fence 2.
        let a_had = a.borrow().clone();
        a_task.abort();
        until("a's logins taken over", &[&b, &c], |o| {
            o[0].len() + o[1].len() == 9
        })
        .await;
        let store = &nodes.stores[1];
        let now = Utc::now().timestamp_millis();
        for (login, fence) in a_had.iter() {
            assert_eq!(*fence, 1);
            // a's writes would carry fence 1: refused now.
            assert!(!store.holds(login, 1, now).await.unwrap(), "{login}");
            assert!(store.holds(login, 2, now).await.unwrap(), "{login}");
        }
        let listed = store.nodes(now).await.unwrap();
        assert!(!listed[0].alive(now), "{listed:?}");

        // b stops cleanly: c has everything within a round or two, not a lease later.
        cancels[1].cancel();
        until("b's logins handed to c", &[&c], |o| o[0].len() == 9).await;
        assert!(b.borrow().is_empty());
        cancels[2].cancel();
    }

    fn node(id: &str, leases: u64, capacity: Option<u32>) -> NodeRow {
        NodeRow {
            node_id: id.into(),
            capacity,
            started_ms: 0,
            seen_ms: 100,
            expires_ms: 1000,
            stopped: false,
            leases,
        }
    }

    #[test]
    fn a_node_alone_takes_everything_it_has_room_for() {
        assert_eq!(share("a", None, 0, 10, &[node("a", 0, None)], 500), 10);
        assert_eq!(share("a", Some(4), 1, 10, &[node("a", 1, Some(4))], 500), 3);
    }

    #[test]
    fn nodes_take_their_fair_share_least_loaded_first() {
        // 9 logins, three nodes: 3 each.
        let nodes = [node("a", 0, None), node("b", 0, None), node("c", 0, None)];
        assert_eq!(share("a", None, 0, 9, &nodes, 500), 3);
        // b already holds 5 of 9 (it was alone for a while): a takes its 3 of the 4 left.
        let nodes = [node("a", 0, None), node("b", 5, None), node("c", 0, None)];
        assert_eq!(share("a", None, 0, 4, &nodes, 500), 3);
        // A node at its share takes nothing while another has room.
        let nodes = [node("a", 3, None), node("b", 0, None)];
        assert_eq!(share("a", None, 3, 3, &nodes, 500), 0);
    }

    #[test]
    fn full_or_dead_nodes_leave_the_rest_to_whoever_has_room() {
        let nodes = [node("a", 0, None), node("b", 2, Some(2))];
        assert_eq!(share("a", None, 0, 7, &nodes, 500), 7);
        let mut dead = node("b", 0, None);
        dead.expires_ms = 10;
        assert_eq!(share("a", None, 0, 7, &[node("a", 0, None), dead], 500), 7);
        let mut stopped = node("b", 0, None);
        stopped.stopped = true;
        assert_eq!(
            share("a", None, 0, 7, &[node("a", 0, None), stopped], 500),
            7
        );
    }
}
