//! `recbot cluster`: the nodes sharing the state database and the logins each owns, as a
//! table for people (times as ages from now).

use std::fmt::Write;

use crate::core::store::{Lease, NodeRow};
use crate::format::duration;

/// One line per node (alive or gone, capacity, logins held, last renewal), then one per
/// lease (owner, fence, time left).
pub fn cluster_table(nodes: &[NodeRow], leases: &[Lease], now_ms: i64) -> String {
    let ago = |ms: i64| duration((now_ms - ms).max(0) as f64 / 1000.0);
    let mut out = String::new();
    if nodes.is_empty() {
        out.push_str("No node has joined yet (a node joins when `recbot run` starts).\n");
    }
    for n in nodes {
        let state = if n.stopped {
            "stopped"
        } else if n.alive(now_ms) {
            "alive"
        } else {
            "gone (lease ran out)"
        };
        let capacity = n
            .capacity
            .map_or("no limit".to_string(), |c| format!("capacity {c}"));
        let _ = writeln!(
            out,
            "node {}: {state}, {} logins, {capacity}, renewed {} ago, up since {} ago",
            n.node_id,
            n.leases,
            ago(n.seen_ms),
            ago(n.started_ms)
        );
    }
    for l in leases {
        match l.owner_at(now_ms) {
            Some(owner) => {
                let left = duration((l.expires_ms - now_ms).max(0) as f64 / 1000.0);
                let _ = writeln!(
                    out,
                    "  {} on {owner} (fence {}, taken {} ago, lease {left} left)",
                    l.login,
                    l.fence,
                    ago(l.taken_ms)
                );
            }
            None => {
                let _ = writeln!(out, "  {} unowned (fence {})", l.login, l.fence);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use recbot_commands::Login;

    #[test]
    fn the_table_tells_alive_gone_and_stopped_nodes_and_who_owns_what() {
        let node = |id: &str, expires_ms, stopped, leases| NodeRow {
            node_id: id.into(),
            capacity: if id == "b" { Some(5) } else { None },
            started_ms: 0,
            seen_ms: 50_000,
            expires_ms,
            stopped,
            leases,
        };
        let nodes = [
            node("a", 90_000, false, 1),
            node("b", 10_000, false, 0),
            node("c", 50_000, true, 0),
        ];
        let leases = [
            Lease {
                login: Login::parse("foo").unwrap(),
                owner: Some("a".into()),
                fence: 3,
                expires_ms: 90_000,
                taken_ms: 40_000,
            },
            Lease {
                login: Login::parse("bar").unwrap(),
                owner: Some("b".into()),
                fence: 1,
                expires_ms: 10_000,
                taken_ms: 0,
            },
        ];
        let text = cluster_table(&nodes, &leases, 60_000);
        assert!(
            text.contains("node a: alive, 1 logins, no limit, renewed 10s ago"),
            "{text}"
        );
        assert!(
            text.contains("node b: gone (lease ran out), 0 logins, capacity 5"),
            "{text}"
        );
        assert!(text.contains("node c: stopped"), "{text}");
        assert!(
            text.contains("foo on a (fence 3, taken 20s ago, lease 30s left)"),
            "{text}"
        );
        assert!(text.contains("bar unowned (fence 1)"), "{text}");
    }
}
