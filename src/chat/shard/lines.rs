//! A shard's received lines: each one encoded into the log batch (deduplicated while two
//! connections overlap after a RECONNECT), and the control lines among them acted on (PING,
//! PONG, RECONNECT, JOIN and PART echoes, refused JOINs).

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::{Shard, ShardEvent, Which};
use crate::chat::conn::{control, ConnError, Control, Received};
use crate::chat::record;
use crate::chat::transport::RawLine;

impl Shard {
    /// Logs every complete line read on `which` and acts on the control lines among them.
    pub(super) async fn drain(&mut self, which: Which) {
        let recv_ms = chrono::Utc::now().timestamp_millis();
        self.dedup.expire();
        let Shard {
            active,
            old,
            batch,
            dedup,
            interner,
            server,
            ..
        } = self;
        let Some(conn) = (match which {
            Which::Active => active.as_mut(),
            Which::Old => old.as_mut(),
        }) else {
            return;
        };
        let mut controls = Vec::new();
        while let Some(raw) = conn.reader.next_line() {
            let (bytes, too_long) = match raw {
                RawLine::Line(b) => (b, false),
                RawLine::TooLong(b) => (b, true),
            };
            let text = as_text(bytes);
            let exact = matches!(text, Cow::Owned(_)).then_some(bytes);
            let start = batch.buf.len();
            let encoded = if too_long {
                record::encode_malformed(
                    &text,
                    exact,
                    recv_ms,
                    "line longer than 64 KiB; cut",
                    &mut batch.buf,
                )
            } else {
                record::encode(&text, exact, recv_ms, &mut batch.buf)
            };
            let chat = is_chat(encoded.command);
            // Only room lines can arrive twice (once per connection). Control lines (PING,
            // PONG, RECONNECT, JOIN echoes, …) belong to the connection that carried them and
            // are identical on every connection: they are never taken for duplicates.
            let dedupable = chat || encoded.id.is_some_and(|id| !id.is_empty());
            if dedupable && dedup.active && !dedup.first(encoded.key()) {
                batch.buf.truncate(start);
                continue;
            }
            let folder = match encoded.channel {
                Some(channel) => match interner.get(channel) {
                    Some(f) => f.clone(),
                    None => {
                        let f: Arc<str> = Arc::from(channel);
                        if interner.len() < 10_000 {
                            interner.insert(f.clone());
                        }
                        f
                    }
                },
                None => server.clone(),
            };
            batch.push_entry(folder, encoded.time_ms);
            if !chat {
                let c = control(&text, &conn.nick);
                if c != Control::Other {
                    controls.push(c);
                }
            }
        }
        let batch = std::mem::take(&mut self.batch);
        self.ctx.queue.push(batch).await;
        for c in controls {
            self.act(which, c).await;
        }
    }

    pub(super) async fn log_received(&mut self, received: Vec<Received>) {
        for r in received {
            let text = as_text(&r.bytes);
            let exact = matches!(text, Cow::Owned(_)).then_some(r.bytes.as_slice());
            let encoded = record::encode(&text, exact, r.recv_ms, &mut self.batch.buf);
            let folder = match encoded.channel {
                Some(c) => Arc::from(c),
                None => self.server.clone(),
            };
            self.batch.push_entry(folder, encoded.time_ms);
        }
        let batch = std::mem::take(&mut self.batch);
        self.ctx.queue.push(batch).await;
    }

    /// Acts on a control line read on `which`; a failed send loses that connection.
    pub(super) async fn act(&mut self, which: Which, c: Control) {
        let result = match c {
            Control::Ping(server) => match self.conn(which) {
                Some(conn) => conn.send(irc_proto::Command::PONG(server, None)).await,
                None => Ok(()),
            },
            Control::Pong => {
                if let Some(conn) = self.conn(which) {
                    conn.pong_deadline = None;
                }
                if which == Which::Old && self.old_draining {
                    self.close_old("caught up after RECONNECT").await;
                }
                Ok(())
            }
            Control::Reconnect => {
                if which == Which::Active && !self.reconnect_requested {
                    info!(
                        shard = self.id,
                        "server asked to reconnect; opening the new connection first"
                    );
                    self.reconnect_requested = true;
                }
                Ok(())
            }
            Control::Joined(room) => self.joined(which, &room).await,
            Control::Parted(room) => {
                self.parted(which, &room);
                Ok(())
            }
            Control::JoinRefused { room, reason } => self.join_refused(which, &room, reason).await,
            _ => Ok(()),
        };
        if let Err(e) = result {
            self.lost(which, e.message).await;
        }
    }

    /// The server confirmed a JOIN (rooms no longer wanted are ignored).
    async fn joined(&mut self, which: Which, room: &str) -> Result<(), ConnError> {
        let Some((room, _)) = self.rooms.get_key_value(room) else {
            return Ok(());
        };
        let room = room.clone();
        if let Some(conn) = self.conn(which) {
            conn.pending.remove(&room);
            conn.joined.insert(room.clone());
        }
        if which == Which::Active {
            self.emit(ShardEvent::Joined {
                shard: self.id,
                room,
            })
            .await;
        }
        self.maybe_finish_overlap().await
    }

    /// The connection left a room; one still wanted is joined again on the active connection.
    fn parted(&mut self, which: Which, room: &str) {
        let wanted = self.rooms.get_key_value(room).map(|(r, _)| r.clone());
        if let Some(conn) = self.conn(which) {
            conn.joined.remove(room);
            if let (Some(room), Which::Active) = (wanted, which) {
                warn!(room = %room, "parted without asking; joining again");
                if !conn.queue.contains(&room) {
                    conn.queue.push_back(room);
                }
            }
        }
    }

    /// Twitch refused a JOIN: the room waits a rejoin interval before the next try.
    async fn join_refused(
        &mut self,
        which: Which,
        room: &str,
        reason: String,
    ) -> Result<(), ConnError> {
        let now = Instant::now();
        let Some((room, _)) = self.rooms.get_key_value(room) else {
            return Ok(());
        };
        let room = room.clone();
        if let Some(info) = self.rooms.get_mut(&room) {
            info.refused_until = Some(now + self.ctx.timing.rejoin_interval);
        }
        if let Some(conn) = self.conn(which) {
            conn.pending.remove(&room);
            conn.queue.retain(|r| *r != room);
        }
        warn!(room = %room, reason, "Twitch refused to join the room");
        self.emit(ShardEvent::JoinRefused { room, reason }).await;
        self.maybe_finish_overlap().await
    }
}

/// The line as text: borrowed when it is UTF-8 (checked the fast way), else its lossy form.
pub(super) fn as_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Commands whose lines are chat (never control); everything else goes through `control`.
fn is_chat(command: Option<&str>) -> bool {
    matches!(
        command,
        Some(
            "PRIVMSG"
                | "USERNOTICE"
                | "CLEARCHAT"
                | "CLEARMSG"
                | "ROOMSTATE"
                | "USERSTATE"
                | "HOSTTARGET"
                | "WHISPER"
                | "GLOBALUSERSTATE"
        )
    )
}

/// Ids remembered while two connections overlap.
const DEDUP_CAPACITY: usize = 200_000;

/// Message ids seen while two connections overlap (only then; otherwise free).
#[derive(Debug, Default)]
pub(super) struct Dedup {
    active: bool,
    stop_at: Option<Instant>,
    seen: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Dedup {
    pub(super) fn start(&mut self) {
        self.active = true;
        self.stop_at = None;
    }

    pub(super) fn stop_after(&mut self, grace: Duration) {
        if self.active {
            self.stop_at = Some(Instant::now() + grace);
        }
    }

    pub(super) fn expire(&mut self) {
        if self.stop_at.is_some_and(|t| t <= Instant::now()) {
            *self = Dedup::default();
        }
    }

    /// `false` when `key` was already seen.
    fn first(&mut self, key: u64) -> bool {
        if !self.active {
            return true;
        }
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > DEDUP_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}
