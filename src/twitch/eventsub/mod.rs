//! Pushed live detection: Twitch EventSub through a conduit whose one shard is a WebSocket, so
//! recbot needs only app credentials (no public address). The EventSub task creates or reuses
//! the conduit (its id kept by the core through [`Calls::save_conduit_id`]), connects the
//! WebSocket (`socket.rs`), assigns shard 0 to the session within Twitch's 10 s window, keeps
//! one `stream.online` and one `stream.offline` subscription per wanted login (`subscriptions.rs`
//! plans, `conduit.rs` makes the Helix requests, paced and within the app's cost limit), and
//! passes notifications to the watcher as [`Pushed`]. The watcher stays the one owner of which
//! logins are live. Nothing is set up (no app token, conduit or socket) while no Twitch login
//! is watched.
//!
//! A dropped socket (not a requested reconnect) means events may have been lost: after the new
//! session's shard is assigned, the watcher is asked for one check of every login
//! ([`Pushed::CheckAll`]). Between failed sessions the task backs off (bounded); after three in
//! a row it reports `EventSubDown` (the watcher polls at its normal interval meanwhile), and
//! `EventSubUp` when a session works again.

pub(crate) mod conduit;
pub(crate) mod socket;
pub(crate) mod subscriptions;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use recbot_commands::Login;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use self::conduit::{ConduitError, Created};
use self::socket::{Notification, Received, Revocation, Socket};
use self::subscriptions::{Step, SubscriptionSet};
use super::helix::Helix;
use crate::config::Twitch;
use crate::event::EventKind;
use crate::work::{Calls, Events};

/// Failed sessions in a row before operators are told EventSub is down.
const FAILED_SESSIONS_BEFORE_REPORT: u32 = 3;
/// First wait after a failed session; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(120);
/// A session up this long was healthy: the backoff starts over.
const HEALTHY: Duration = Duration::from_secs(60);
/// Longest wait after failed subscription requests in a row.
const MAX_STEP_BACKOFF: Duration = Duration::from_secs(60);
/// Quiet time after a change of the wanted logins before the next request.
const SETTLE: Duration = Duration::from_millis(200);
/// Messages from the socket reader waiting for the task.
const RECEIVED_QUEUE: usize = 256;

/// What the EventSub task needs from the core: where to save a new conduit's id, and the id
/// saved before.
#[derive(Debug, Clone)]
pub struct EventSubLink {
    pub calls: Calls,
    pub conduit_id: Option<String>,
}

/// What EventSub tells the watcher.
#[derive(Debug, Clone, PartialEq)]
pub enum Pushed {
    Online {
        login: Login,
        stream_id: String,
        started_at: Option<DateTime<Utc>>,
    },
    Offline {
        login: Login,
        stream_id: Option<String>,
    },
    /// The shard is assigned to a welcomed session: notifications flow.
    Up,
    /// The session ended: none flow until the next `Up`.
    Down,
    /// Notifications may have been lost (a dropped socket): check every login now.
    CheckAll,
}

/// EventSub as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventSubStatus {
    pub up: bool,
    /// Subscriptions held (enabled) and wanted (two per watched login Twitch knows).
    pub held: usize,
    pub wanted: usize,
    /// The app's subscription cost limit stops further creates.
    pub full: bool,
    pub last_notification: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// Starts the EventSub task on `tracker`; its status.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn(
    helix: Arc<Helix>,
    twitch: &Twitch,
    link: EventSubLink,
    wanted: watch::Receiver<Vec<Login>>,
    pushed: mpsc::Sender<Pushed>,
    events: Events,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> watch::Receiver<EventSubStatus> {
    let (status, status_rx) = watch::channel(EventSubStatus::default());
    let task = EventSub {
        helix,
        url: twitch.eventsub_ws_url.clone(),
        pace: Duration::from_secs(1) / twitch.eventsub_changes_per_sec.max(1),
        polling_secs: twitch.poll_interval_secs(),
        calls: link.calls,
        conduit: link.conduit_id,
        verified: false,
        set: SubscriptionSet::default(),
        wanted,
        pushed,
        events,
        status,
        shutdown,
        tracker: tracker.clone(),
        failed_sessions: 0,
        reported_down: false,
        reported_full: false,
        had_session: false,
        step_failures: 0,
    };
    tracker.spawn(task.run());
    status_rx
}

struct EventSub {
    helix: Arc<Helix>,
    url: String,
    /// Time between subscription changes.
    pace: Duration,
    polling_secs: u64,
    calls: Calls,
    conduit: Option<String>,
    /// The conduit is known to exist (checked or created in this run).
    verified: bool,
    set: SubscriptionSet,
    wanted: watch::Receiver<Vec<Login>>,
    pushed: mpsc::Sender<Pushed>,
    events: Events,
    status: watch::Sender<EventSubStatus>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    failed_sessions: u32,
    reported_down: bool,
    reported_full: bool,
    /// A session was up before: the next one follows a drop.
    had_session: bool,
    step_failures: u32,
}

/// Why a session ended.
enum End {
    Stopped,
    Failed(String),
}

impl From<ConduitError> for End {
    fn from(e: ConduitError) -> End {
        End::Failed(e.to_string())
    }
}

impl EventSub {
    async fn run(mut self) {
        let mut attempt = 0;
        loop {
            if !self.logins_wanted().await {
                return;
            }
            let started = Instant::now();
            let reason = match self.session().await {
                End::Stopped => return,
                End::Failed(reason) => reason,
            };
            self.went_down(&reason).await;
            if started.elapsed() >= HEALTHY {
                attempt = 0;
            }
            let wait = crate::backoff::exponential(attempt, FIRST_BACKOFF, MAX_BACKOFF);
            attempt += 1;
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Waits until some login is watched (no conduit, socket or app token before); `false`
    /// on shutdown.
    async fn logins_wanted(&mut self) -> bool {
        while self.wanted.borrow_and_update().is_empty() {
            tokio::select! {
                _ = self.shutdown.cancelled() => return false,
                changed = self.wanted.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// One session: conduit, socket, shard, then notifications and subscription changes until
    /// it ends.
    async fn session(&mut self) -> End {
        let conduit = match self.conduit().await {
            Ok(id) => id,
            Err(e) => return e.into(),
        };
        let socket = match Socket::connect(&self.url).await {
            Ok(socket) => socket,
            Err(e) => return End::Failed(e),
        };
        let mut session_id = socket.session_id.clone();
        if let Err(end) = self.assign(&conduit, &session_id).await {
            return end;
        }
        let (tx, mut rx) = mpsc::channel(RECEIVED_QUEUE);
        let reader = self.shutdown.child_token();
        self.tracker.spawn(socket.run(tx, reader.clone()));
        let _stop_reader = reader.drop_guard();
        self.went_up().await;
        self.set.want(self.wanted.borrow_and_update().clone());
        self.set.relist();
        let mut next_step = Instant::now();
        loop {
            let work = self.set.next().is_some();
            tokio::select! {
                _ = self.shutdown.cancelled() => return End::Stopped,
                received = rx.recv() => match received {
                    None | Some(Received::Ended(_)) => {
                        let reason = match received {
                            Some(Received::Ended(r)) => r,
                            _ => "the socket reader stopped".into(),
                        };
                        return End::Failed(reason);
                    }
                    Some(Received::Switched { session_id: new }) if new != session_id => {
                        // Twitch keeps the id on a requested reconnect; if not, re-assign.
                        session_id = new;
                        if let Err(end) = self.assign(&conduit, &session_id).await {
                            return end;
                        }
                    }
                    Some(Received::Switched { .. }) => {}
                    Some(Received::Notification(n)) => self.notified(n).await,
                    Some(Received::Revocation(r)) => self.revoked(r).await,
                },
                changed = self.wanted.changed() => {
                    if changed.is_err() {
                        return End::Stopped;
                    }
                    self.set.want(self.wanted.borrow_and_update().clone());
                    self.publish(|_| {});
                    // Logins come in bursts (one `add` after another): their ids are looked
                    // up together once the burst settles.
                    next_step = next_step.max(Instant::now() + SETTLE);
                }
                _ = tokio::time::sleep_until(next_step), if work => {
                    next_step = Instant::now() + self.step(&conduit).await;
                }
            }
        }
    }

    /// The conduit to use: the stored one while Twitch knows it, else a new one (saved
    /// through the core before it is used).
    async fn conduit(&mut self) -> Result<String, ConduitError> {
        if let Some(id) = self.conduit.clone() {
            if self.verified || conduit::exists(&self.helix, &id).await? {
                self.verified = true;
                return Ok(id);
            }
            info!(conduit = %id, "Twitch no longer knows the stored EventSub conduit; creating one");
        }
        let id = conduit::create(&self.helix).await?;
        self.calls
            .save_conduit_id(id.clone())
            .await
            .map_err(|e| ConduitError::Refused(format!("cannot keep the conduit id: {e:#}")))?;
        info!(conduit = %id, "EventSub conduit created");
        self.conduit = Some(id.clone());
        self.verified = true;
        Ok(id)
    }

    /// Assigns shard 0 to `session`; a conduit Twitch no longer knows is forgotten (the next
    /// session makes a new one).
    async fn assign(&mut self, conduit: &str, session: &str) -> Result<(), End> {
        match conduit::assign(&self.helix, conduit, session).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.verified = false;
                self.conduit = None;
                Err(End::Failed(
                    "Twitch no longer knows the EventSub conduit".into(),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn went_up(&mut self) {
        info!("EventSub up: shard 0 assigned");
        let _ = self.pushed.send(Pushed::Up).await;
        if self.had_session {
            // Notifications between the drop and now are lost: look at every login once.
            let _ = self.pushed.send(Pushed::CheckAll).await;
        }
        self.had_session = true;
        self.failed_sessions = 0;
        self.publish(|s| {
            s.up = true;
            s.last_error = None;
        });
        if self.reported_down {
            self.reported_down = false;
            self.events.emit(None, EventKind::EventSubUp).await;
        }
    }

    async fn went_down(&mut self, reason: &str) {
        warn!(reason, "EventSub session ended");
        let was_up = self.status.borrow().up;
        if was_up {
            let _ = self.pushed.send(Pushed::Down).await;
        } else {
            self.failed_sessions += 1;
        }
        self.publish(|s| {
            s.up = false;
            s.last_error = Some(reason.to_string());
        });
        if self.failed_sessions >= FAILED_SESSIONS_BEFORE_REPORT && !self.reported_down {
            self.reported_down = true;
            let down = EventKind::EventSubDown {
                reason: reason.to_string(),
                polling_secs: self.polling_secs,
            };
            self.events.emit(None, down).await;
        }
    }

    async fn notified(&mut self, notification: Notification) {
        self.publish(|s| s.last_notification = Some(Utc::now()));
        let pushed = match notification {
            Notification::Online {
                stream_id,
                broadcaster_id,
                login,
                kind,
                started_at,
            } => {
                if !(kind.is_empty() || kind == "live") {
                    info!(%login, %kind, "EventSub: not a live broadcast; ignored");
                    return;
                }
                let Some(login) = self.login(&broadcaster_id, &login) else {
                    return;
                };
                Pushed::Online {
                    login,
                    stream_id,
                    started_at,
                }
            }
            Notification::Offline {
                broadcaster_id,
                login,
                stream_id,
            } => {
                let Some(login) = self.login(&broadcaster_id, &login) else {
                    return;
                };
                Pushed::Offline { login, stream_id }
            }
        };
        let _ = self.pushed.send(pushed).await;
    }

    /// The wanted login a notification is about: by user id when known, else by its login.
    fn login(&self, broadcaster_id: &str, login: &str) -> Option<Login> {
        if let Some(login) = self.set.login_of(broadcaster_id) {
            return Some(login);
        }
        match Login::parse(&login.to_ascii_lowercase()) {
            Ok(login) => Some(login),
            Err(_) => {
                warn!(login = %login.chars().take(40).collect::<String>(), "EventSub named an unusable login; ignored");
                None
            }
        }
    }

    async fn revoked(&mut self, r: Revocation) {
        warn!(kind = %r.kind, status = %r.status, "EventSub revoked a subscription");
        let login = r
            .broadcaster_id
            .as_deref()
            .and_then(|id| self.set.login_of(id));
        self.set.revoked(&r.subscription_id);
        self.publish(|_| {});
        let kind = EventKind::EventSubRevoked {
            subscription: r.kind,
            reason: r.status,
        };
        self.events.emit(login, kind).await;
    }

    /// Makes the next request towards the wanted set; the wait before the one after.
    async fn step(&mut self, conduit: &str) -> Duration {
        let Some(step) = self.set.next() else {
            return self.pace;
        };
        let done = match step {
            Step::List => conduit::list(&self.helix, conduit)
                .await
                .map(|listing| self.set.listed(listing)),
            Step::LookUp(logins) => conduit::user_ids(&self.helix, &logins)
                .await
                .map(|found| self.set.looked_up(&logins, found)),
            Step::Delete { id, key } => conduit::unsubscribe(&self.helix, &id)
                .await
                .map(|()| self.set.deleted(&id, &key)),
            Step::Create(key) => self.create(conduit, key).await,
        };
        if !self.set.full() {
            // Below the limit again: the next time it is reached is reported.
            self.reported_full = false;
        } else if !self.reported_full {
            self.reported_full = true;
            let full = EventKind::EventSubLimitReached {
                held: self.set.held(),
                wanted: self.set.wanted(),
            };
            warn!(
                held = self.set.held(),
                wanted = self.set.wanted(),
                "EventSub cost limit reached"
            );
            self.events.emit(None, full).await;
        }
        let error = done.err().map(|e| e.to_string());
        self.publish(|s| s.last_error = error.clone());
        match error {
            None => {
                self.step_failures = 0;
                self.pace
            }
            Some(e) => {
                warn!(error = %e, "EventSub subscription request failed");
                self.step_failures += 1;
                crate::backoff::exponential(self.step_failures, self.pace, MAX_STEP_BACKOFF)
            }
        }
    }

    async fn create(&mut self, conduit: &str, key: subscriptions::Key) -> Result<(), ConduitError> {
        match conduit::subscribe(&self.helix, conduit, key.1, &key.0).await? {
            Created::Made {
                id,
                total_cost,
                max_total_cost,
            } => self.set.created(key, Some(id), total_cost, max_total_cost),
            Created::Exists => {
                self.set.created(key, None, None, None);
            }
            Created::CostExceeded => self.set.cost_exceeded(),
        }
        Ok(())
    }

    fn publish(&self, f: impl FnOnce(&mut EventSubStatus)) {
        self.status.send_modify(|s| {
            f(s);
            s.held = self.set.held();
            s.wanted = self.set.wanted();
            s.full = self.set.full();
        });
    }
}
