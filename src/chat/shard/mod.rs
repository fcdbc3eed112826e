//! One shard: up to `channels_per_connection` rooms on one connection, kept joined across
//! drops. It owns the connection (and, during a RECONNECT, the next one), JOINs through the
//! account's [`JoinLimiter`](super::limits::JoinLimiter), answers and sends PINGs, re-JOINs
//! every room hourly, reconnects with backoff, and turns every received line into a log record.
//!
//! On `RECONNECT` the new connection is opened and joined before the old one is closed; room
//! lines seen on both are dropped by message id (by their raw text when they have none).
//! Control lines are never deduplicated: each connection's PINGs are answered and its PONGs
//! honoured. The old connection is closed only after a PONG on it, so everything it carried
//! before the new one took over has been read.

mod lines;
mod rooms;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::conn::{Conn, ConnError, ErrorKind, Identity, Received};
use super::limits::{ConnectGate, JoinLimiter};
use super::names::{RoomMap, RoomSet};
use super::transport::Dialer;
use super::writer::{Batch, LineQueue, SERVER_FOLDER};
use crate::backoff::{Backoff, Jitter};
use lines::Dedup;
use rooms::RoomInfo;

/// Rooms per JOIN line (≤ 500 bytes with 25-character logins).
const JOIN_BATCH: usize = 15;
/// A connection that lived this long was healthy: the backoff starts over.
const STABLE: Duration = Duration::from_secs(60);
/// The old connection of a RECONNECT is closed after this at the latest.
const OVERLAP_MAX: Duration = Duration::from_secs(600);
/// Timing, from `[chat]`.
#[derive(Debug, Clone)]
pub struct Timing {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub rejoin_interval: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Timing {
    fn join_timeout(&self) -> Duration {
        (self.ping_timeout * 3).max(Duration::from_millis(300))
    }

    fn housekeeping(&self) -> Duration {
        Duration::from_secs(5)
            .min(self.join_timeout() / 2)
            .min(self.rejoin_interval / 4)
    }
}

/// What every shard of the pool shares.
#[derive(Debug)]
pub(crate) struct Context {
    pub timing: Timing,
    pub dialer: Dialer,
    pub limiter: JoinLimiter,
    pub gate: ConnectGate,
    pub queue: LineQueue,
    /// Who connections log in as; `None` until the pool has settled it.
    pub identity: watch::Receiver<Option<Identity>>,
    pub events: mpsc::Sender<ShardEvent>,
    pub cancel: CancellationToken,
    pub next_conn: AtomicU64,
}

#[derive(Debug)]
pub(crate) enum ShardCmd {
    Add(Vec<Arc<str>>),
    Remove(Vec<Arc<str>>),
}

/// What a shard tells the pool.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ShardEvent {
    Connected {
        shard: usize,
        nick: String,
    },
    Joined {
        shard: usize,
        room: Arc<str>,
    },
    JoinRefused {
        room: Arc<str>,
        reason: String,
    },
    /// The shard has no connection (its rooms are not logged) since now.
    Down {
        shard: usize,
        reason: String,
    },
    /// The shard is connected again after `offline`.
    Up {
        shard: usize,
        offline: Duration,
    },
    AuthFailed {
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Active,
    Old,
}

type Opening = Pin<Box<dyn Future<Output = Result<(Conn, Vec<Received>), ConnError>> + Send>>;

pub(crate) struct Shard {
    id: usize,
    ctx: Arc<Context>,
    cmds: mpsc::Receiver<ShardCmd>,
    rooms: RoomMap<Arc<str>, RoomInfo>,
    /// Folder names of rooms seen on the wire, so a line costs no allocation for its room.
    interner: RoomSet<Arc<str>>,
    server: Arc<str>,
    active: Option<Conn>,
    /// The connection being replaced after a RECONNECT.
    old: Option<Conn>,
    old_deadline: Option<Instant>,
    /// The old connection got its final PING; its PONG closes it.
    old_draining: bool,
    opening: Option<Opening>,
    /// The server asked for a new connection.
    reconnect_requested: bool,
    /// Failed attempts since the last success; the next attempt waits for the backoff.
    failures: u32,
    backoff: Backoff,
    down_since: Option<Instant>,
    dedup: Dedup,
    batch: Batch,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("id", &self.id)
            .field("rooms", &self.rooms.len())
            .finish()
    }
}

impl Shard {
    pub(crate) fn new(id: usize, ctx: Arc<Context>, cmds: mpsc::Receiver<ShardCmd>) -> Shard {
        let backoff = Backoff::new(
            ctx.timing.backoff_initial,
            ctx.timing.backoff_max,
            Jitter::Full,
        );
        let server: Arc<str> = Arc::from(SERVER_FOLDER);
        Shard {
            id,
            ctx,
            cmds,
            rooms: RoomMap::default(),
            interner: RoomSet::from_iter([server.clone()]),
            server,
            active: None,
            old: None,
            old_deadline: None,
            old_draining: false,
            opening: None,
            reconnect_requested: false,
            failures: 0,
            backoff,
            down_since: None,
            dedup: Dedup::default(),
            batch: Batch::default(),
        }
    }

    pub(crate) async fn run(mut self) {
        let ctx = self.ctx.clone();
        let mut housekeeping = tokio::time::interval(ctx.timing.housekeeping());
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.maybe_open();
            let join_want = self
                .active
                .as_ref()
                .map_or(0, |c| c.queue.len().min(JOIN_BATCH));
            let deadline = self.next_deadline();
            tokio::select! {
                _ = ctx.cancel.cancelled() => break,
                cmd = self.cmds.recv() => match cmd {
                    Some(cmd) => self.command(cmd).await,
                    None => break,
                },
                opened = poll_opening(&mut self.opening) => {
                    self.opening = None;
                    self.opened(opened).await;
                }
                read = fill(&mut self.active) => self.read(Which::Active, read).await,
                read = fill(&mut self.old) => self.read(Which::Old, read).await,
                n = ctx.limiter.take(join_want), if join_want > 0 => self.send_joins(n).await,
                _ = tokio::time::sleep_until(deadline) => self.keepalive().await,
                _ = housekeeping.tick() => self.housekeeping(),
            }
        }
        for conn in [self.active.take(), self.old.take()].into_iter().flatten() {
            conn.close().await;
        }
        debug!(shard = self.id, "chat shard stopped");
    }

    fn maybe_open(&mut self) {
        let needed = (self.active.is_none() && !self.rooms.is_empty())
            || (self.reconnect_requested && self.old.is_none());
        if !needed || self.opening.is_some() {
            return;
        }
        let delay = if self.failures > 0 {
            self.backoff.next_delay(&mut rand::rng())
        } else {
            Duration::ZERO
        };
        if !delay.is_zero() {
            debug!(
                shard = self.id,
                delay_secs = delay.as_secs_f64(),
                "reconnecting after a pause"
            );
        }
        let ctx = self.ctx.clone();
        let id = ctx.next_conn.fetch_add(1, Ordering::Relaxed);
        let mut identity = ctx.identity.clone();
        self.opening = Some(Box::pin(async move {
            tokio::time::sleep(delay).await;
            let identity = match identity.wait_for(Option::is_some).await {
                Ok(known) => known.clone().unwrap_or(Identity::Anonymous),
                Err(_) => Identity::Anonymous,
            };
            ctx.gate.wait().await;
            Conn::open(
                id,
                &ctx.dialer,
                &identity,
                ctx.timing.ping_timeout,
                ctx.timing.ping_interval,
            )
            .await
        }));
    }

    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let mut deadline = far;
        if let Some(c) = &self.active {
            // While a PING is unanswered only its deadline matters.
            deadline = deadline.min(c.pong_deadline.unwrap_or(c.next_ping));
        }
        if let Some(c) = &self.old {
            if let Some(d) = c.pong_deadline {
                deadline = deadline.min(d);
            }
        }
        if let Some(d) = self.old_deadline {
            deadline = deadline.min(d);
        }
        deadline
    }

    /// Borrows nothing across the await (a shard is not `Sync`).
    fn emit(&self, event: ShardEvent) -> impl Future<Output = ()> + Send + 'static {
        let events = self.ctx.events.clone();
        async move {
            let _ = events.send(event).await;
        }
    }

    fn conn(&mut self, which: Which) -> Option<&mut Conn> {
        match which {
            Which::Active => self.active.as_mut(),
            Which::Old => self.old.as_mut(),
        }
    }

    async fn opened(&mut self, result: Result<(Conn, Vec<Received>), ConnError>) {
        match result {
            Ok((mut conn, received)) => {
                info!(shard = self.id, conn = conn.id, nick = %conn.nick, "chat connection open");
                self.log_received(received).await;
                let now = Instant::now();
                conn.queue = self
                    .rooms
                    .iter()
                    .filter(|(_, info)| info.refused_until.is_none_or(|t| t <= now))
                    .map(|(room, _)| room.clone())
                    .collect();
                if self.reconnect_requested && self.active.is_some() {
                    self.old = self.active.take();
                    self.old_deadline = Some(now + OVERLAP_MAX);
                    self.old_draining = false;
                    self.dedup.start();
                }
                self.reconnect_requested = false;
                self.failures = 0;
                let nick = conn.nick.clone();
                self.active = Some(conn);
                self.emit(ShardEvent::Connected {
                    shard: self.id,
                    nick,
                })
                .await;
                if let Some(since) = self.down_since.take() {
                    self.emit(ShardEvent::Up {
                        shard: self.id,
                        offline: since.elapsed(),
                    })
                    .await;
                }
            }
            Err(e) => {
                self.failures += 1;
                if e.kind == ErrorKind::Auth {
                    self.emit(ShardEvent::AuthFailed {
                        reason: e.message.clone(),
                    })
                    .await;
                }
                if self.active.is_some() {
                    warn!(shard = self.id, error = %e, "could not open the replacement connection; keeping the current one");
                } else if self.down_since.is_none() {
                    warn!(shard = self.id, error = %e, "chat connection failed");
                    self.down_since = Some(Instant::now());
                    self.emit(ShardEvent::Down {
                        shard: self.id,
                        reason: e.message,
                    })
                    .await;
                } else {
                    debug!(shard = self.id, error = %e, attempts = self.backoff.attempts(), "chat connection still failing");
                }
            }
        }
    }

    async fn read(&mut self, which: Which, read: std::io::Result<usize>) {
        match read {
            Ok(n) if n > 0 => self.drain(which).await,
            Ok(_) => {
                self.lost(which, "the server closed the connection".into())
                    .await
            }
            Err(e) => self.lost(which, format!("connection error: {e}")).await,
        }
    }

    /// After a RECONNECT: once the new connection has every room, PING the old one; its PONG
    /// proves everything it carried has been read, and it is closed.
    async fn maybe_finish_overlap(&mut self) -> Result<(), ConnError> {
        if self.old.is_none() || self.old_draining {
            return Ok(());
        }
        let now = Instant::now();
        let Some(active) = &self.active else {
            return Ok(());
        };
        let complete = self
            .rooms
            .iter()
            .filter(|(_, info)| info.refused_until.is_none_or(|t| t <= now))
            .all(|(room, _)| active.joined.contains(room));
        if complete {
            self.old_draining = true;
            let timing = self.ctx.timing.clone();
            if let Some(old) = self.old.as_mut() {
                if old
                    .ping(timing.ping_interval, timing.ping_timeout)
                    .await
                    .is_err()
                {
                    self.close_old("could not send its last PING").await;
                }
            }
        }
        Ok(())
    }

    async fn close_old(&mut self, why: &str) {
        if let Some(old) = self.old.take() {
            debug!(
                shard = self.id,
                conn = old.id,
                why,
                "closing the replaced connection"
            );
            old.close().await;
        }
        self.old_deadline = None;
        self.old_draining = false;
        self.dedup.stop_after(self.ctx.timing.ping_timeout);
    }

    async fn lost(&mut self, which: Which, reason: String) {
        match which {
            Which::Old => {
                debug!(shard = self.id, reason, "the replaced connection ended");
                self.old = None;
                self.old_deadline = None;
                self.old_draining = false;
                self.dedup.stop_after(self.ctx.timing.ping_timeout);
            }
            Which::Active => {
                let Some(conn) = self.active.take() else {
                    return;
                };
                if conn.opened.elapsed() >= STABLE {
                    self.backoff.reset();
                }
                self.failures = self.failures.max(1);
                if let Some(old) = self.old.take() {
                    warn!(
                        shard = self.id,
                        reason, "the new connection failed during a RECONNECT; keeping the old one"
                    );
                    self.active = Some(old);
                    self.old_deadline = None;
                    self.old_draining = false;
                    self.reconnect_requested = true;
                    // One connection again: what the failed one carried may still come on
                    // this one for a moment, nothing after that.
                    self.dedup.stop_after(self.ctx.timing.ping_timeout);
                    return;
                }
                warn!(
                    shard = self.id,
                    conn = conn.id,
                    reason,
                    "chat connection lost"
                );
                drop(conn);
                if self.down_since.is_none() {
                    self.down_since = Some(Instant::now());
                    self.emit(ShardEvent::Down {
                        shard: self.id,
                        reason,
                    })
                    .await;
                }
            }
        }
    }

    async fn keepalive(&mut self) {
        let now = Instant::now();
        let timing = self.ctx.timing.clone();
        if self.old_deadline.is_some_and(|d| d <= now)
            || self
                .old
                .as_ref()
                .and_then(|c| c.pong_deadline)
                .is_some_and(|d| d <= now)
        {
            self.close_old("overlap over").await;
        }
        let Some(conn) = self.active.as_mut() else {
            return;
        };
        if conn.pong_deadline.is_some_and(|d| d <= now) {
            let reason = format!("no PONG within {} s", timing.ping_timeout.as_secs_f64());
            self.lost(Which::Active, reason).await;
        } else if conn.pong_deadline.is_none() && conn.next_ping <= now {
            if let Err(e) = conn.ping(timing.ping_interval, timing.ping_timeout).await {
                self.lost(Which::Active, e.message).await;
            }
        }
    }
}

async fn fill(conn: &mut Option<Conn>) -> std::io::Result<usize> {
    match conn {
        Some(c) => c.reader.fill().await,
        None => std::future::pending().await,
    }
}

async fn poll_opening(opening: &mut Option<Opening>) -> Result<(Conn, Vec<Received>), ConnError> {
    match opening {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
