//! The chat worker: keeps the wanted rooms (from the watch list) and the joined rooms apart and
//! reconciles them by assigning rooms to shards (at most `channels_per_connection` each,
//! opening and closing shards as needed). It turns what shards report into the core's events
//! (`ChatJoined`, `ChatDisconnected`, `ChatReconnected`, `ChatDropped`, `AuthRequired`),
//! answers `status`, and writes per-recording chat files on request. With `[chat] stream_url`
//! it also starts the chat stream (`chat::stream`), which the writer hands every batch to.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use recbot_commands::Login;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::conn::Identity;
use super::day_files;
use super::export;
use super::limits::{ConnectGate, JoinLimiter};
use super::shard::{Context, Shard, ShardCmd, ShardEvent, Timing};
use super::stream::StreamSettings;
use super::subtitles::SubtitleSettings;
use super::transport::Dialer;
use super::writer::{self, day_of, Compression, Counters, LineQueue, WriterSettings};
use crate::config::{ChatCompression, ChatLogin, Config};
use crate::event::{Event, EventKind};
use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::twitch::oauth;

/// How long after the first unannounced JOIN a `ChatJoined` is posted even while more rooms
/// are still joining (startup with many logins).
const ANNOUNCE_AFTER: Duration = Duration::from_secs(60);
/// `ChatDropped` is posted at most this often.
const DROP_REPORT: Duration = Duration::from_secs(10);
/// How long a connection waits for room in the writer queue before dropping its lines.
const QUEUE_PATIENCE: Duration = Duration::from_secs(2);

/// Everything the chat worker needs, resolved from the config.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    pub dialer: Dialer,
    pub login: ChatLogin,
    /// `[twitch] id_url`, to learn which account a user token belongs to.
    pub id_url: String,
    pub channels_per_connection: usize,
    pub connect_interval: Duration,
    pub join_limit: usize,
    pub join_window: Duration,
    pub timing: Timing,
    pub writer: WriterSettings,
    /// The replay subtitles written beside each part's chat file.
    pub replay: SubtitleSettings,
    /// The chat stream on NATS JetStream (`[chat] stream_url`); `None`: off.
    pub stream: Option<StreamSettings>,
    /// Chzzk chat and Bilibili danmaku rooms (`platform_room.rs`).
    pub rooms: super::platform_room::RoomConfig,
}

impl ChatSettings {
    pub fn from_config(config: &Config) -> Result<ChatSettings> {
        let c = &config.chat;
        let t = &config.twitch;
        let secs = Duration::from_secs_f64;
        let dialer = Dialer::new(&t.irc_host, t.irc_port, t.irc_tls)
            .context("cannot set up TLS for the chat connection")?;
        Ok(ChatSettings {
            dialer,
            login: c.login,
            id_url: t.id_url.clone(),
            channels_per_connection: c.channels_per_connection,
            connect_interval: secs(c.connect_interval_secs),
            join_limit: c.join_limit,
            join_window: secs(c.join_window_secs),
            timing: Timing {
                ping_interval: secs(c.ping_interval_secs),
                ping_timeout: secs(c.ping_timeout_secs),
                rejoin_interval: secs(c.rejoin_interval_secs),
                backoff_initial: secs(c.backoff_initial_secs),
                backoff_max: secs(c.backoff_max_secs),
            },
            writer: WriterSettings {
                dir: config.storage.chat_dir(),
                flush_interval: secs(c.flush_interval_secs),
                fsync_interval: secs(c.fsync_interval_secs),
                queue_lines: c.queue_lines,
                patience: QUEUE_PATIENCE,
                max_open_files: c.max_open_files,
                compression: match c.compression {
                    ChatCompression::Zstd => Compression::Zstd {
                        level: c.zstd_level,
                    },
                    ChatCompression::None => Compression::None,
                },
            },
            replay: SubtitleSettings::from_config(c),
            stream: StreamSettings::from_config(config),
            rooms: super::platform_room::RoomConfig::from_config(config),
        })
    }
}

/// Who the chat logger logs in as, for `status` (worded by the front-ends).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ChatIdentity {
    /// `[chat] login = "anonymous"`.
    #[default]
    Anonymous,
    /// `login = "user"`, but no Twitch account is connected yet.
    NoAccount,
    /// The connected account's token is being checked.
    Checking,
    /// Logged in as this account.
    User(String),
    /// The account's token cannot be used (the validation's error).
    TokenUnusable(String),
    /// Twitch refused the account's login (its notice).
    Refused(String),
}

/// What `status` shows about chat logging.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatStatus {
    pub identity: ChatIdentity,
    pub connections: usize,
    pub connections_up: usize,
    pub wanted: usize,
    pub joined: usize,
    pub lines_today: u64,
    pub dropped: u64,
    pub last_disconnect: Option<(DateTime<Utc>, String)>,
    /// Rooms Twitch refused to join, with its reason.
    pub refused: Vec<(String, String)>,
    pub login: Option<LoginChat>,
}

/// Chat logging of one login.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoginChat {
    pub wanted: bool,
    pub joined: bool,
    pub lines_today: u64,
    pub refused: Option<String>,
}

#[derive(Debug)]
enum PoolCmd {
    Want(Vec<Login>),
    UserToken(Option<Secret>),
    SavePart {
        login: Login,
        part: u32,
        sidecar: PathBuf,
        session: Option<i64>,
    },
    Status(Option<Login>, oneshot::Sender<ChatStatus>),
}

/// The core's handle on the chat worker.
#[derive(Debug, Clone)]
pub struct ChatHandle {
    tx: mpsc::Sender<PoolCmd>,
}

impl ChatHandle {
    /// The logins whose chat should be logged now; rooms are joined and parted to match.
    pub async fn set_wanted(&self, logins: Vec<Login>) {
        let _ = self.tx.send(PoolCmd::Want(logins)).await;
    }

    /// The Twitch user token (for `login = "user"`), or `None` when there is none.
    pub async fn set_user_token(&self, token: Option<Secret>) {
        let _ = self.tx.send(PoolCmd::UserToken(token)).await;
    }

    /// Writes `<recording>.chat.jsonl` beside a finished part (in the background); reports
    /// `ChatSaved` or `ChatSaveFailed`, which the part's upload waits for (in the core).
    pub async fn save_part(&self, login: Login, part: u32, sidecar: PathBuf, session: Option<i64>) {
        let _ = self
            .tx
            .send(PoolCmd::SavePart {
                login,
                part,
                sidecar,
                session,
            })
            .await;
    }

    pub async fn status(&self, login: Option<Login>) -> Option<ChatStatus> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(PoolCmd::Status(login, tx)).await.ok()?;
        rx.await.ok()
    }
}

/// Starts the chat worker (pool, shards and writer) on `tracker`; it counts into `metrics`.
pub fn start(
    settings: ChatSettings,
    user_token: Option<Secret>,
    events: mpsc::Sender<Event>,
    tracker: &TaskTracker,
    cancel: CancellationToken,
    metrics: Arc<Metrics>,
) -> ChatHandle {
    let stream = settings
        .stream
        .clone()
        .map(|s| super::stream::start(s, events.clone(), tracker, cancel.clone(), metrics.clone()));
    let (queue, counters, writer_task) =
        writer::writer_with_stream(settings.writer.clone(), metrics.clone(), stream);
    tracker.spawn(writer_task);
    let (shard_tx, shard_rx) = mpsc::channel(1024);
    // `None` until the first identity is settled: connections wait for it.
    let (identity_tx, identity_rx) = watch::channel(None);
    let (resolved_tx, resolved_rx) = mpsc::channel(4);
    let ctx = Arc::new(Context {
        timing: settings.timing.clone(),
        dialer: settings.dialer.clone(),
        limiter: JoinLimiter::new(settings.join_limit, settings.join_window),
        gate: ConnectGate::new(settings.connect_interval),
        queue: queue.clone(),
        identity: identity_rx,
        events: shard_tx,
        cancel: cancel.clone(),
        next_conn: AtomicU64::new(1),
    });
    let (tx, rx) = mpsc::channel(64);
    let pool = Pool {
        settings,
        ctx,
        tracker: tracker.clone(),
        events,
        queue,
        counters,
        identity: identity_tx,
        identity_note: ChatIdentity::Anonymous,
        resolving: 0,
        resolved_tx,
        cancel: cancel.clone(),
        user_token,
        wanted: BTreeSet::new(),
        assigned: HashMap::new(),
        shards: Vec::new(),
        joined: HashMap::new(),
        ever_joined: HashSet::new(),
        announce: Vec::new(),
        announce_since: None,
        outage: None,
        last_disconnect: None,
        refused: HashMap::new(),
        dropped_reported: 0,
        last_drop_report: None,
        metrics,
        dropped_counted: 0,
        platform_rooms: HashMap::new(),
    };
    tracker.spawn(pool.run(rx, shard_rx, resolved_rx));
    ChatHandle { tx }
}

struct Slot {
    tx: mpsc::Sender<ShardCmd>,
    rooms: HashSet<Arc<str>>,
    up: bool,
    /// It had a connection before: the next one is a reconnect.
    connected_before: bool,
}

struct Pool {
    settings: ChatSettings,
    ctx: Arc<Context>,
    tracker: TaskTracker,
    events: mpsc::Sender<Event>,
    queue: LineQueue,
    counters: Arc<Mutex<Counters>>,
    identity: watch::Sender<Option<Identity>>,
    identity_note: ChatIdentity,
    /// Numbers the account checks; only the latest one's answer counts.
    resolving: u64,
    resolved_tx: mpsc::Sender<Resolved>,
    cancel: CancellationToken,
    user_token: Option<Secret>,
    wanted: BTreeSet<Arc<str>>,
    assigned: HashMap<Arc<str>, usize>,
    shards: Vec<Option<Slot>>,
    /// Rooms confirmed joined, and on which shard.
    joined: HashMap<Arc<str>, usize>,
    /// Rooms already announced since they were added.
    ever_joined: HashSet<Arc<str>>,
    announce: Vec<Arc<str>>,
    announce_since: Option<Instant>,
    /// Since when some shard is down.
    outage: Option<Instant>,
    last_disconnect: Option<(DateTime<Utc>, String)>,
    refused: HashMap<Arc<str>, String>,
    dropped_reported: u64,
    last_drop_report: Option<Instant>,
    metrics: Arc<Metrics>,
    /// Dropped lines already in `recbot_chat_dropped_total`.
    dropped_counted: u64,
    /// The rooms of wanted Chzzk and Bilibili logins, one connection each.
    platform_rooms: HashMap<Login, super::platform_room::PlatformRoom>,
}

/// The answer of an account check started by [`Pool::resolve_identity`].
struct Resolved {
    generation: u64,
    token: Secret,
    login: Result<String>,
}

impl Pool {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<PoolCmd>,
        mut shard_rx: mpsc::Receiver<ShardEvent>,
        mut resolved_rx: mpsc::Receiver<Resolved>,
    ) {
        let cancel = self.cancel.clone();
        self.resolve_identity();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd).await,
                    None => break,
                },
                Some(event) = shard_rx.recv() => self.shard_event(event).await,
                Some(resolved) = resolved_rx.recv() => self.resolved(resolved),
                _ = tick.tick() => self.tick().await,
            }
        }
        // Report what was dropped up to the end.
        self.report_drops(true).await;
        self.metrics.chat_connections.set(0);
    }

    async fn emit(&self, login: Option<Login>, kind: EventKind) {
        let _ = self.events.send(Event::now(login, kind)).await;
    }

    /// Settles who the next connections log in as. Asking Twitch whose token it is (up to
    /// 15 s) runs in a task of its own, so status, shard reports and shutdown never wait for
    /// it; connections opened meanwhile keep the current identity (the first ones wait).
    fn resolve_identity(&mut self) {
        self.resolving += 1;
        let (identity, note) = match (self.settings.login, self.user_token.clone()) {
            (ChatLogin::Anonymous, _) => (Identity::Anonymous, ChatIdentity::Anonymous),
            (ChatLogin::User, None) => {
                info!("chat: no Twitch account connected yet (`auth twitch`); logging anonymously");
                (Identity::Anonymous, ChatIdentity::NoAccount)
            }
            (ChatLogin::User, Some(token)) => {
                if self.identity.borrow().is_none() {
                    self.identity_note = ChatIdentity::Checking;
                }
                let generation = self.resolving;
                let id_url = self.settings.id_url.clone();
                let tx = self.resolved_tx.clone();
                let cancel = self.cancel.clone();
                self.tracker.spawn(async move {
                    let login = tokio::select! {
                        _ = cancel.cancelled() => return,
                        login = validate(&id_url, &token) => login,
                    };
                    let _ = tx
                        .send(Resolved {
                            generation,
                            token,
                            login,
                        })
                        .await;
                });
                return;
            }
        };
        self.identity_note = note;
        self.identity.send_replace(Some(identity));
    }

    fn resolved(&mut self, resolved: Resolved) {
        if resolved.generation != self.resolving {
            return; // A newer token replaced the one checked.
        }
        let (identity, note) = match resolved.login {
            Ok(login) => {
                info!(login, "chat: logging in as the connected Twitch account");
                (
                    Identity::User {
                        login: login.clone(),
                        token: resolved.token,
                    },
                    ChatIdentity::User(login),
                )
            }
            Err(e) => {
                warn!(error = %e, "chat: the Twitch token cannot be used; logging anonymously");
                (
                    Identity::Anonymous,
                    ChatIdentity::TokenUnusable(format!("{e:#}")),
                )
            }
        };
        self.identity_note = note;
        self.identity.send_replace(Some(identity));
    }

    async fn command(&mut self, cmd: PoolCmd) {
        match cmd {
            PoolCmd::Want(logins) => self.set_wanted(logins).await,
            PoolCmd::UserToken(token) => {
                self.user_token = token;
                self.resolve_identity();
            }
            PoolCmd::SavePart {
                login,
                part,
                sidecar,
                session,
            } => {
                let queue = self.queue.clone();
                let events = self.events.clone();
                let dir = self.settings.writer.dir.clone();
                let replay = self.settings.replay.clone();
                self.tracker.spawn(async move {
                    let mut replay_failed = None;
                    let kind = match export::save_part(&queue, &dir, &sidecar, &replay).await {
                        Ok(saved) => {
                            replay_failed = saved.replay_failed;
                            EventKind::ChatSaved {
                                part,
                                file: saved.path,
                                lines: saved.lines,
                            }
                        }
                        Err(e) => {
                            warn!(error = %format!("{e:#}"), sidecar = %sidecar.display(), "cannot write the recording's chat file");
                            EventKind::ChatSaveFailed {
                                part,
                                reason: format!("{e:#}"),
                            }
                        }
                    };
                    let event = |kind| {
                        let mut event = Event::now(Some(login.clone()), kind);
                        event.session = session;
                        event
                    };
                    let _ = events.send(event(kind)).await;
                    // After `ChatSaved`, which the upload waits for: the replay is an extra.
                    if let Some(reason) = replay_failed {
                        let _ = events
                            .send(event(EventKind::ChatReplayFailed { part, reason }))
                            .await;
                    }
                });
            }
            PoolCmd::Status(login, reply) => {
                let status = self.status(login).await;
                let _ = reply.send(status);
            }
        }
    }

    /// Starts the rooms of newly wanted Chzzk/Bilibili logins (their day files in the
    /// login's path-safe folder, `chzzk-<id>`) and stops those no longer wanted; the other
    /// logins are Twitch's.
    async fn set_wanted_platforms(&mut self, logins: &[Login]) {
        use super::platform_room;
        let wanted: HashSet<&Login> = logins.iter().collect();
        let gone: Vec<Login> = self
            .platform_rooms
            .keys()
            .filter(|l| !wanted.contains(l))
            .cloned()
            .collect();
        for login in gone {
            if let Some(room) = self.platform_rooms.remove(&login) {
                room.stop().await;
            }
        }
        for login in logins {
            if self.platform_rooms.contains_key(login) {
                continue;
            }
            let Ok(channel) = recbot_commands::ChannelRef::from_key(login.as_str()) else {
                continue;
            };
            let room = platform_room::start(
                channel,
                login.clone(),
                Arc::from(login.path_safe()),
                self.settings.rooms.clone(),
                self.queue.clone(),
                crate::work::Events::new(self.events.clone()),
                &self.tracker,
                self.cancel.clone(),
            );
            self.platform_rooms.insert(login.clone(), room);
        }
    }

    async fn set_wanted(&mut self, logins: Vec<Login>) {
        let (platforms, logins): (Vec<Login>, Vec<Login>) = logins
            .into_iter()
            .partition(|l| l.platform() != recbot_commands::Platform::Twitch);
        self.set_wanted_platforms(&platforms).await;
        let new: BTreeSet<Arc<str>> = logins.iter().map(|l| Arc::from(l.as_str())).collect();
        let removed: Vec<Arc<str>> = self.wanted.difference(&new).cloned().collect();
        let added: Vec<Arc<str>> = new.difference(&self.wanted).cloned().collect();
        self.wanted = new;
        self.queue
            .set_rooms(self.wanted.len() + self.platform_rooms.len());
        let mut per_shard: HashMap<usize, Vec<Arc<str>>> = HashMap::new();
        for room in removed {
            self.joined.remove(&room);
            self.ever_joined.remove(&room);
            self.refused.remove(&room);
            self.announce.retain(|r| *r != room);
            if let Some(shard) = self.assigned.remove(&room) {
                if let Some(slot) = self.shards[shard].as_mut() {
                    slot.rooms.remove(&room);
                }
                per_shard.entry(shard).or_default().push(room);
            }
        }
        for (shard, rooms) in per_shard.drain() {
            if let Some(slot) = &self.shards[shard] {
                let _ = slot.tx.send(ShardCmd::Remove(rooms)).await;
            }
        }
        // Shards left without rooms close their connection.
        for slot in &mut self.shards {
            if slot.as_ref().is_some_and(|s| s.rooms.is_empty()) {
                *slot = None;
            }
        }
        let cap = self.settings.channels_per_connection;
        for room in added {
            let shard = match self
                .shards
                .iter()
                .position(|s| s.as_ref().is_some_and(|s| s.rooms.len() < cap))
            {
                Some(i) => i,
                None => self.new_shard(),
            };
            if let Some(slot) = self.shards[shard].as_mut() {
                slot.rooms.insert(room.clone());
            }
            self.assigned.insert(room.clone(), shard);
            per_shard.entry(shard).or_default().push(room);
        }
        for (shard, rooms) in per_shard {
            if let Some(slot) = &self.shards[shard] {
                let _ = slot.tx.send(ShardCmd::Add(rooms)).await;
            }
        }
        if self.outage.is_some() && self.all_up() {
            self.end_outage().await;
        }
        self.count_connections();
    }

    /// `recbot_chat_connections`: the shards connected now.
    fn count_connections(&self) {
        let up = self.shards.iter().flatten().filter(|s| s.up).count();
        self.metrics.chat_connections.set(up as i64);
    }

    fn new_shard(&mut self) -> usize {
        // Ids are never reused, so a late report of a closed shard cannot be mistaken for a
        // new one's.
        let id = self.shards.len();
        let (tx, rx) = mpsc::channel(64);
        self.tracker
            .spawn(Shard::new(id, self.ctx.clone(), rx).run());
        let slot = Slot {
            tx,
            rooms: HashSet::new(),
            up: false,
            connected_before: false,
        };
        self.shards.push(Some(slot));
        id
    }

    fn all_up(&self) -> bool {
        self.shards.iter().flatten().all(|s| s.up)
    }

    async fn end_outage(&mut self) {
        if let Some(since) = self.outage.take() {
            let offline = since.elapsed().as_secs_f64();
            info!(offline_secs = offline, "chat: every connection is back");
            self.emit(
                None,
                EventKind::ChatReconnected {
                    offline_secs: offline,
                },
            )
            .await;
        }
    }

    async fn shard_event(&mut self, event: ShardEvent) {
        match event {
            ShardEvent::Connected { shard, nick } => {
                info!(shard, nick, "chat: connected");
                if let Some(Some(slot)) = self.shards.get_mut(shard) {
                    slot.up = true;
                    if std::mem::replace(&mut slot.connected_before, true) {
                        self.metrics.irc_reconnects.inc();
                    }
                }
                self.count_connections();
            }
            ShardEvent::Joined { shard, room } => {
                if !self.wanted.contains(&room) {
                    return;
                }
                self.joined.insert(room.clone(), shard);
                self.refused.remove(&room);
                if self.ever_joined.insert(room.clone()) {
                    self.announce.push(room);
                    self.announce_since.get_or_insert_with(Instant::now);
                }
            }
            ShardEvent::JoinRefused { room, reason } => {
                self.refused.insert(room, reason);
            }
            ShardEvent::Down { shard, reason } => {
                let rooms = self.joined.values().filter(|s| **s == shard).count();
                self.joined.retain(|_, s| *s != shard);
                let Some(Some(slot)) = self.shards.get_mut(shard) else {
                    return;
                };
                slot.up = false;
                let rooms = rooms.max(slot.rooms.len());
                self.count_connections();
                self.last_disconnect = Some((Utc::now(), reason.clone()));
                if self.outage.is_none() {
                    self.outage = Some(Instant::now());
                    self.emit(
                        None,
                        EventKind::ChatDisconnected {
                            reason: format!("{reason} ({rooms} room(s) not logged meanwhile)"),
                        },
                    )
                    .await;
                }
            }
            ShardEvent::Up { shard, .. } => {
                if let Some(Some(slot)) = self.shards.get_mut(shard) {
                    slot.up = true;
                }
                self.count_connections();
                if self.all_up() {
                    self.end_outage().await;
                }
            }
            ShardEvent::AuthFailed { reason } => {
                if matches!(*self.identity.borrow(), Some(Identity::User { .. })) {
                    warn!(
                        reason,
                        "chat: Twitch refused the account's login; logging anonymously"
                    );
                    self.identity.send_replace(Some(Identity::Anonymous));
                    self.identity_note = ChatIdentity::Refused(reason.clone());
                    self.emit(
                        None,
                        EventKind::AuthRequired {
                            service: "twitch".into(),
                            reason: format!(
                                "Twitch refused the chat login ({reason}); chat is logged \
                                 anonymously until the account is connected again"
                            ),
                            url: None,
                        },
                    )
                    .await;
                }
            }
        }
    }

    async fn tick(&mut self) {
        if !self.announce.is_empty() {
            let settled = self
                .wanted
                .iter()
                .all(|r| self.joined.contains_key(r) || self.refused.contains_key(r));
            let waited = self
                .announce_since
                .is_some_and(|t| t.elapsed() >= ANNOUNCE_AFTER);
            if settled || waited {
                let rooms = std::mem::take(&mut self.announce);
                self.announce_since = None;
                let login = match rooms.as_slice() {
                    [one] => Login::from_stored(one).ok(),
                    _ => None,
                };
                self.emit(login, EventKind::ChatJoined { rooms: rooms.len() })
                    .await;
            }
        }
        self.report_drops(false).await;
    }

    async fn report_drops(&mut self, now: bool) {
        let dropped = self.queue.dropped();
        // The metric follows within a second (this runs on every tick); the event is paced.
        if dropped > self.dropped_counted {
            self.metrics
                .chat_dropped
                .inc_by(dropped - self.dropped_counted);
            self.dropped_counted = dropped;
        }
        let due = self
            .last_drop_report
            .is_none_or(|t| t.elapsed() >= DROP_REPORT);
        if dropped > self.dropped_reported && (now || due) {
            let lines = dropped - self.dropped_reported;
            warn!(lines, "chat lines dropped: the disk cannot keep up");
            self.dropped_reported = dropped;
            self.last_drop_report = Some(Instant::now());
            self.emit(None, EventKind::ChatDropped { lines }).await;
        }
    }

    async fn status(&self, login: Option<Login>) -> ChatStatus {
        let today = day_of(Utc::now().timestamp_millis());
        let lines_today = self
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .total(today);
        let mut refused: Vec<(String, String)> = self
            .refused
            .iter()
            .map(|(r, why)| (r.to_string(), why.clone()))
            .collect();
        refused.sort();
        let login = match login {
            Some(login) => Some(self.login_status(&login, today).await),
            None => None,
        };
        let slots: Vec<&Slot> = self.shards.iter().flatten().collect();
        ChatStatus {
            identity: self.identity_note.clone(),
            connections: slots.len(),
            connections_up: slots.iter().filter(|s| s.up).count(),
            wanted: self.wanted.len(),
            joined: self.joined.len(),
            lines_today,
            dropped: self.queue.dropped(),
            last_disconnect: self.last_disconnect.clone(),
            refused,
            login,
        }
    }

    async fn login_status(&self, login: &Login, today: i32) -> LoginChat {
        let room = login.as_str();
        let counted = self
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lines(room, today);
        let lines_today = match counted {
            Some(n) => n,
            None => {
                let dir = self.settings.writer.dir.clone();
                let (room, date) = (room.to_string(), writer::date_of_day(today));
                tokio::task::spawn_blocking(move || day_files::count_day(&dir, &room, date))
                    .await
                    .unwrap_or(0)
            }
        };
        LoginChat {
            wanted: self.wanted.contains(room),
            joined: self.joined.contains_key(room),
            lines_today,
            refused: self.refused.get(room).cloned(),
        }
    }
}

/// Which account a user token belongs to (`GET {id_url}/validate`, which Twitch also asks
/// chat clients to call at start), through the token keeper's check.
async fn validate(id_url: &str, token: &Secret) -> Result<String> {
    // The token goes to `id_url` only (invariant 12): a redirect is an answer, not a hop.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let v = oauth::validate(&client, id_url.trim_end_matches('/'), token)
        .await
        .context("cannot check the token with Twitch")?;
    if !super::line::is_login(&v.login) {
        anyhow::bail!("Twitch's token check named an invalid login");
    }
    Ok(v.login)
}
