//! The supervisor: the one task that owns recbot's state. It applies commands (persist first,
//! then reply), receives [`Event`]s from workers, persists them in the event log and passes
//! them on to the front-ends as [`Notice`]s. Workers are spawned and cancelled from here; they
//! know the core only through `crate::work` (events, calls, tokens, job rows) and interfaces
//! they define (`upload::JobSource`), which the core implements.

mod apply;
mod auth;
mod calls;
mod chat;
pub mod cluster;
mod cut;
mod disk_report;
mod gauges;
mod health;
mod history;
mod live;
mod outbox;
mod post;
mod reactions;
mod recording;
mod reply;
mod restart;
mod status;
pub mod store;
mod summary;
mod uploads;
mod vod_fill;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use recbot_commands::{Command, Login};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::event::{Event, EventKind, Room};
use crate::metrics::Metrics;
use crate::work::{Call, Events};
use calls::CheckedAdd;
pub use health::{Unready, HEALTH_WITHIN};
pub use history::{SessionQuery, SessionView, MAX_SESSIONS};
pub use outbox::{CoreStopped, OutboxState, Pending};
pub use reply::{
    AuthLink, ChatLine, Connected, CutReport, DiskLevel, DiskReport, EventSubNow, LiveDetection,
    LiveOf, LoginStatus, Minutes, QuotaReport, RecordingNow, Refusal, Reply, Said, ServiceStatus,
    StatusReport,
};
use store::Store;
pub use uploads::video_url;

/// Capacity of the worker → core event channel; workers wait when it is full.
const EVENT_QUEUE: usize = 1024;
/// Capacity of the front-end broadcast; a front-end that falls this far behind is told so.
const NOTICE_QUEUE: usize = 1024;
/// Commands waiting for the core.
const REQUEST_QUEUE: usize = 64;
/// Workers' durable-change requests waiting for the core (each worker has at most one open).
const CALL_QUEUE: usize = 64;
/// Checked `add hls` commands waiting for the core (one per command whose source's name was
/// resolved off the loop, so bounded by the requests in flight).
const ADD_QUEUE: usize = 64;
/// How long shutdown waits for workers, counted from the moment shutdown was requested (not
/// from when the core got to it): `main` gives the whole shutdown 10 s, and the database must
/// be closed cleanly within them.
const DRAIN: Duration = Duration::from_secs(8);

/// Who sent a command and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub room: Room,
    /// A front-end's user id (`console` on the console), for the audit trail.
    pub user: String,
    /// Decided by the front-end from its configured operators.
    pub operator: bool,
}

impl Origin {
    pub fn console() -> Origin {
        Origin {
            room: Room::Console,
            user: "console".into(),
            operator: true,
        }
    }

    /// An HTTP API client, by its token's name: `http:<name>` in the audit log.
    pub fn http(name: &str, operator: bool) -> Origin {
        Origin {
            room: Room::Http(name.to_string()),
            user: format!("http:{name}"),
            operator,
        }
    }
}

/// What applying a command gives: a reply now, or one a worker task sends when the slow part
/// (an OAuth exchange with a remote service) is done, so the core never waits on the network.
pub(super) enum Answer {
    Now(Reply),
    Later(Pin<Box<dyn Future<Output = Reply> + Send>>),
}

/// An event as front-ends receive it: persisted (with its sequence number in the event log)
/// and addressed to the room of its login, when it has one.
#[derive(Debug, Clone)]
pub struct Notice {
    pub seq: i64,
    pub event: Event,
    /// The room the login was added from; `None` for service-wide events.
    pub room: Option<Room>,
}

#[derive(Debug)]
struct Inbox {
    requests: mpsc::Receiver<Request>,
    events: mpsc::Receiver<Event>,
    outbox: mpsc::Receiver<outbox::OutboxRequest>,
    calls: mpsc::Receiver<Call>,
    adds: mpsc::Receiver<CheckedAdd>,
}

#[derive(Debug)]
struct Request {
    command: Command,
    origin: Origin,
    reply: oneshot::Sender<Reply>,
}

/// A cheap handle front-ends use to talk to the core.
#[derive(Debug, Clone)]
pub struct CoreHandle {
    requests: mpsc::Sender<Request>,
    notices: broadcast::Sender<Arc<Notice>>,
    /// Front-ends' delivery bookkeeping (see `outbox.rs`).
    outbox: mpsc::Sender<outbox::OutboxRequest>,
    /// Front-ends report what happened to their deliveries (a receiver's refusal) as events,
    /// persisted and announced like a worker's.
    events: mpsc::Sender<Event>,
    stopped: CancellationToken,
    /// This service's metrics (the workers count into them; `/metrics` encodes them).
    metrics: Arc<Metrics>,
}

impl CoreHandle {
    /// Parses command text and executes it. Text that does not parse gets the parser's error
    /// (with usage) and reaches nothing else.
    pub async fn submit(&self, text: &str, origin: Origin) -> Reply {
        match recbot_commands::parse(text) {
            Ok(command) => self.execute(command, origin).await,
            Err(e) => Reply::refused(Refusal::Unparsed(e)),
        }
    }

    pub async fn execute(&self, command: Command, origin: Origin) -> Reply {
        let (tx, rx) = oneshot::channel();
        let request = Request {
            command,
            origin,
            reply: tx,
        };
        if self.requests.send(request).await.is_err() {
            return Reply::refused(Refusal::ShuttingDown);
        }
        rx.await
            .unwrap_or_else(|_| Reply::refused(Refusal::StoppedBeforeAnswer))
    }

    /// Reports an event as a worker would (persisted, then announced); waits while the
    /// event queue is full. Dropped, with a warning, when the core has stopped.
    pub async fn report(&self, event: Event) {
        Events::new(self.events.clone()).send(event).await
    }

    /// This service's metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Every notice from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Notice>> {
        self.notices.subscribe()
    }

    /// Resolves once the core has drained its workers, published its last notice and closed
    /// the state database.
    pub async fn stopped(&self) {
        self.stopped.cancelled().await
    }
}

/// Runs `op` to its end, noting in `at` when `shutdown` is requested meanwhile (if it was not
/// noted before).
/// Resolves when the watcher's status changed; never without a watcher (or once it is gone).
async fn status_changed(
    checks: &mut Option<tokio::sync::watch::Receiver<crate::twitch::watcher::WatcherStatus>>,
) {
    if let Some(rx) = checks {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    *checks = None;
    std::future::pending::<()>().await
}

async fn noting<T>(
    op: impl Future<Output = T>,
    shutdown: &CancellationToken,
    at: &mut Option<tokio::time::Instant>,
) -> T {
    let mut op = std::pin::pin!(op);
    if at.is_none() {
        tokio::select! {
            biased;
            out = &mut op => return out,
            _ = shutdown.cancelled() => *at = Some(tokio::time::Instant::now()),
        }
    }
    op.await
}

/// The supervisor's state. Lives inside its task; reach it through a [`CoreHandle`].
#[derive(Debug)]
pub struct Core {
    config: Arc<Config>,
    store: Store,
    started: Instant,
    events_tx: mpsc::Sender<Event>,
    calls_tx: mpsc::Sender<Call>,
    /// The core's own checked `add`s ([`CheckedAdd`]).
    adds_tx: mpsc::Sender<CheckedAdd>,
    /// The receiving ends, until the core task takes them.
    inbox: Option<Inbox>,
    /// Events produced by reactions, published after the one being handled.
    followups: VecDeque<Event>,
    notices: broadcast::Sender<Arc<Notice>>,
    /// Cancelled on SIGINT/SIGTERM; workers get child tokens.
    shutdown: CancellationToken,
    /// Cancelled when the core has finished (see [`CoreHandle::stopped`]).
    stopped: CancellationToken,
    /// Every worker task; shutdown waits for all of them.
    workers: TaskTracker,
    /// Live detection for the watched Twitch logins.
    watcher: Option<crate::twitch::watcher::WatcherHandle>,
    /// Live detection for the watched Chzzk channels (live.rs).
    chzzk: Option<crate::chzzk::detect::DetectorHandle>,
    /// Chzzk's API, for `add chzzk …` (the channel looked up off the loop).
    chzzk_api: crate::chzzk::api::ChzzkApi,
    /// Rechecks asked for per login since its recording last worked, and the stream they
    /// were for: a new broadcast starts over (live.rs).
    live_restarts: std::collections::HashMap<Login, (Option<String>, u32)>,
    /// The watcher's last check sampled (`summary.rs`).
    sampled_check: u64,
    /// Pending OAuth authorizations and the Twitch token keeper (auth.rs).
    auth: auth::AuthState,
    /// The upload worker's wake-up (uploads.rs).
    uploads: uploads::UploadState,
    /// Recording sessions, HLS pollers, the disk guard (see `recording.rs`).
    recordings: recording::Recordings,
    /// The chat logger, when enabled.
    chat: Option<crate::chat::ChatHandle>,
    /// Upload jobs waiting for their part's chat file (chat.rs).
    chat_waits: chat::ChatWaits,
    /// The post-processing worker: not started, running, or ffmpeg not running (post.rs).
    post: post::PostWorker,
    /// [`DRAIN`] (shorter in tests).
    drain: Duration,
    /// This service's metrics, handed to the workers it starts.
    metrics: Arc<Metrics>,
    /// This node's membership when the state database is shared (PostgreSQL): the logins it
    /// owns and their fences (cluster.rs). `None` with SQLite: one node owns everything.
    node: Option<cluster::Node>,
}

impl Core {
    /// Opens the state and returns the core (not yet running) and its handle. Front-ends
    /// subscribe to the handle before [`Core::spawn`], so they see every notice from the first.
    pub async fn open(
        config: Arc<Config>,
        shutdown: CancellationToken,
    ) -> Result<(Core, CoreHandle)> {
        let store = Store::open_config(&config.storage).await?;
        let (requests_tx, requests_rx) = mpsc::channel(REQUEST_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let (calls_tx, calls_rx) = mpsc::channel(CALL_QUEUE);
        let (adds_tx, adds_rx) = mpsc::channel(ADD_QUEUE);
        let (notices, _) = broadcast::channel(NOTICE_QUEUE);
        let (outbox_tx, outbox_rx) = outbox::channel();
        let stopped = CancellationToken::new();
        let workers = TaskTracker::new();
        let auth = auth::AuthState::default();
        let metrics = Arc::new(Metrics::new());
        let recordings = recording::Recordings::new(
            &config,
            Events::new(events_tx.clone()),
            workers.clone(),
            shutdown.clone(),
            auth.viewer_login(),
            metrics.clone(),
        );
        let chzzk_api =
            crate::chzzk::api::ChzzkApi::from_config(crate::chzzk::api::client(), &config.chzzk);
        let core = Core {
            chzzk: None,
            chzzk_api,
            config,
            store,
            started: Instant::now(),
            events_tx,
            calls_tx,
            adds_tx,
            inbox: Some(Inbox {
                requests: requests_rx,
                events: events_rx,
                outbox: outbox_rx,
                calls: calls_rx,
                adds: adds_rx,
            }),
            followups: VecDeque::new(),
            notices: notices.clone(),
            shutdown,
            stopped: stopped.clone(),
            workers,
            recordings,
            watcher: None,
            live_restarts: Default::default(),
            sampled_check: 0,
            auth,
            uploads: uploads::UploadState::default(),
            chat: None,
            chat_waits: Default::default(),
            post: post::PostWorker::default(),
            drain: DRAIN,
            metrics: metrics.clone(),
            node: None,
        };
        let handle = CoreHandle {
            requests: requests_tx,
            notices,
            outbox: outbox_tx,
            events: core.events_tx.clone(),
            stopped,
            metrics,
        };
        Ok((core, handle))
    }

    /// Reconciles what should run with what is persisted and starts the core task on
    /// `tracker`. The task ends after the shutdown token is cancelled and everything drained.
    pub async fn spawn(mut self, tracker: &TaskTracker) -> Result<()> {
        let watching = self.store.watches().await?.len();
        info!(
            watching,
            schema = self.store.schema_version().await?,
            "state loaded"
        );
        let inbox = self.inbox.take().expect("spawned once");
        self.join_cluster().await;
        self.start_watcher().await;
        self.start_chzzk();
        self.prime_viewer().await;
        self.start_recording().await;
        self.start_chat().await;
        self.watches_changed().await;
        self.resume_chat_waits().await;
        self.start_post().await;
        self.resume_uploads().await?;
        self.resume_vod_fills().await;
        self.start_token_keepers();
        tracker.spawn(self.run(inbox, watching));
        Ok(())
    }

    /// [`Core::open`] and [`Core::spawn`] in one, for callers that subscribe later.
    pub async fn start(
        config: Arc<Config>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<CoreHandle> {
        let (core, handle) = Core::open(config, shutdown).await?;
        core.spawn(tracker).await?;
        Ok(handle)
    }

    /// A sender for workers' events (and for tests that play a worker).
    pub fn events(&self) -> Events {
        Events::new(self.events_tx.clone())
    }

    async fn run(mut self, inbox: Inbox, watching: usize) {
        let Inbox {
            mut requests,
            mut events,
            mut outbox,
            mut calls,
            mut adds,
        } = inbox;
        let shutdown = self.shutdown.clone();
        // When shutdown was requested: an operation in progress then is finished first (a
        // half-done one would leave its state half-changed), but its time counts.
        let mut cancelled_at = None;
        let at = &mut cancelled_at;
        let started = Event::now(
            None,
            EventKind::ServiceStarted {
                version: env!("CARGO_PKG_VERSION").into(),
                watching,
            },
        );
        noting(self.publish(started), &shutdown, at).await;
        let mut checks = self.watcher.as_ref().map(|w| w.changes());
        let mut owned = self.node.as_ref().map(|n| n.subscribe());
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(event) = events.recv() => {
                    noting(self.publish_worker_event(event), &shutdown, at).await
                }
                // What this node owns changed: workers follow (cluster.rs).
                () = cluster::owned_changed(&mut owned) => {
                    noting(self.watches_changed(), &shutdown, at).await
                }
                // After the events: a check's `LiveDetected` (sent before its status) has
                // opened the session its sample belongs to.
                () = status_changed(&mut checks) => {
                    noting(self.sample_live(), &shutdown, at).await
                }
                Some(request) = outbox.recv() => {
                    noting(self.outbox_request(request), &shutdown, at).await
                }
                Some(call) = calls.recv() => noting(self.handle_call(call), &shutdown, at).await,
                Some(add) = adds.recv() => noting(self.handle_add(add), &shutdown, at).await,
                Some(request) = requests.recv() => {
                    noting(self.respond(request), &shutdown, at).await
                }
            }
        }
        let deadline = cancelled_at.unwrap_or_else(tokio::time::Instant::now) + self.drain;
        info!("shutting down: waiting for workers to finish their files");
        self.publish(Event::now(None, EventKind::ServiceStopping))
            .await;
        requests.close();
        self.workers.close();
        let workers = self.workers.clone();
        // Workers may still report (final file names, last gaps) while they finish.
        let drain = async {
            let mut finished = std::pin::pin!(workers.wait());
            loop {
                tokio::select! {
                    Some(event) = events.recv() => self.publish_worker_event(event).await,
                    // Front-ends still record what they post while workers finish.
                    Some(request) = outbox.recv() => self.outbox_request(request).await,
                    // Workers persist their last offsets and tokens while they finish.
                    Some(call) = calls.recv() => self.handle_call(call).await,
                    // A checked add arriving now is refused (shutting down), not left waiting.
                    Some(add) = adds.recv() => self.handle_add(add).await,
                    _ = &mut finished => break,
                }
            }
        };
        if tokio::time::timeout_at(deadline, drain).await.is_err() {
            error!(
                "workers did not finish within {} s of the shutdown request; stopping anyway",
                self.drain.as_secs_f32()
            );
        }
        // What workers already reported is stored either way (quick writes; the queue is
        // bounded), so that it is not lost with the late ones.
        while let Ok(event) = events.try_recv() {
            self.publish_worker_event(event).await;
        }
        self.store.close().await;
        info!("state saved");
        self.stopped.cancel();
    }

    /// Applies a command and answers it, now or from a worker task when it involves a remote
    /// service. The requester may have given up (front-end timeout); the command stands.
    async fn respond(&mut self, request: Request) {
        match self.apply(request.command, request.origin).await {
            Answer::Now(reply) => {
                let _ = request.reply.send(reply);
            }
            Answer::Later(reply) => {
                self.workers.spawn(async move {
                    let _ = request.reply.send(reply.await);
                });
            }
        }
    }

    /// Persists an event, lets the core react to it, then passes it on to the front-ends.
    /// Events that reactions produce (see [`Core::follow_up`]) are handled the same way, in
    /// order, before this returns.
    async fn publish(&mut self, event: Event) {
        self.followups.push_back(event);
        while let Some(event) = self.followups.pop_front() {
            self.publish_one(event).await;
        }
    }

    /// Queues an event caused by a reaction (published right after the current one).
    fn follow_up(&mut self, event: Event) {
        self.followups.push_back(event);
    }

    async fn publish_one(&mut self, event: Event) {
        let mut event = self.prepare_recording_event(event).await;
        if store::clamp_non_finite(&mut event) {
            warn!(
                kind = event.kind_name(),
                "an event carried a number that is not finite; stored as 0"
            );
        }
        let seq = match self.store.append_event(&event).await {
            Ok(seq) => seq,
            Err(e) => {
                error!(error = %e, kind = event.kind_name(), "cannot persist event");
                0
            }
        };
        self.react(&event).await;
        if event.kind.is_audit_only() {
            return;
        }
        let room = self.room_of(&event).await;
        // No subscribers is fine (e.g. before a front-end connects); the log has it.
        let _ = self.notices.send(Arc::new(Notice { seq, event, room }));
    }

    /// The room the event's login was added from (`None` for service-wide events or a login
    /// no longer watched).
    async fn room_of(&self, event: &Event) -> Option<Room> {
        match &event.login {
            Some(login) => self.store.watch(login).await.ok().flatten().map(|w| w.room),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests;
