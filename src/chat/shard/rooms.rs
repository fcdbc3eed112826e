//! A shard's rooms: which it should be in (added and removed by the pool), JOINs sent as the
//! account's limiter allows, unconfirmed JOINs retried, and every room re-JOINed hourly.

use std::sync::Arc;

use tokio::time::Instant;
use tracing::{debug, warn};

use super::{Shard, ShardCmd, Which};

#[derive(Debug, Default)]
pub(super) struct RoomInfo {
    pub(super) last_join: Option<Instant>,
    pub(super) refused_until: Option<Instant>,
}

impl Shard {
    pub(super) async fn command(&mut self, cmd: ShardCmd) {
        match cmd {
            ShardCmd::Add(rooms) => {
                for room in rooms {
                    if self.rooms.contains_key(&room) {
                        continue;
                    }
                    self.rooms.insert(room.clone(), RoomInfo::default());
                    self.interner.insert(room.clone());
                    if let Some(c) = self.active.as_mut() {
                        c.queue.push_back(room);
                    }
                }
            }
            ShardCmd::Remove(rooms) => {
                for room in rooms {
                    self.rooms.remove(&room);
                    for which in [Which::Active, Which::Old] {
                        let Some(c) = self.conn(which) else { continue };
                        let joined = c.joined.contains(&room) || c.pending.contains_key(&room);
                        c.queue.retain(|r| *r != room);
                        if joined {
                            if let Err(e) = c.part(&room).await {
                                self.lost(which, e.message).await;
                            }
                        }
                    }
                }
            }
        }
    }

    pub(super) async fn send_joins(&mut self, n: usize) {
        let Some(conn) = self.active.as_mut() else {
            return;
        };
        let take = n.min(conn.queue.len());
        let rooms: Vec<Arc<str>> = conn.queue.drain(..take).collect();
        if rooms.is_empty() {
            return;
        }
        let now = Instant::now();
        for room in &rooms {
            if let Some(info) = self.rooms.get_mut(room) {
                info.last_join = Some(now);
            }
        }
        debug!(shard = self.id, rooms = rooms.len(), "JOIN");
        if let Err(e) = conn.join(&rooms).await {
            self.lost(Which::Active, e.message).await;
        }
    }

    pub(super) fn housekeeping(&mut self) {
        self.dedup.expire();
        let now = Instant::now();
        let timing = &self.ctx.timing;
        let Some(conn) = self.active.as_mut() else {
            return;
        };
        let join_timeout = timing.join_timeout();
        let late: Vec<Arc<str>> = conn
            .pending
            .iter()
            .filter(|(_, sent)| now.duration_since(**sent) >= join_timeout)
            .map(|(room, _)| room.clone())
            .collect();
        for room in late {
            conn.pending.remove(&room);
            if self.rooms.contains_key(&room) && !conn.joined.contains(&room) {
                warn!(room = %room, "no JOIN confirmation; trying again");
                conn.queue.push_back(room);
            }
        }
        for (room, info) in &mut self.rooms {
            if info.refused_until.is_some_and(|t| t > now)
                || conn.queue.contains(room)
                || conn.pending.contains_key(room)
            {
                continue;
            }
            info.refused_until = None;
            let due = info
                .last_join
                .is_none_or(|t| now.duration_since(t) >= timing.rejoin_interval);
            if due || !conn.joined.contains(room) {
                conn.queue.push_back(room.clone());
            }
        }
    }
}
