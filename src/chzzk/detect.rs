//! Live detection for the watched Chzzk channels: one task asks `live-detail` of each channel
//! when its turn comes ([`Checks`]: the stepped backoff of `[chzzk] poll_schedule` per
//! channel), every request through one [`Pacer`] whatever the number of channels. What it
//! sees becomes the events Twitch's watcher emits: `LiveDetected` (once per broadcast, its
//! `liveId` as the stream id), `StreamUpdated` (title or category changed), `StreamOffline`;
//! a live adult-only stream without the login cookies is `LiveAdultOnly` (once per
//! broadcast), a live stream without a playable HLS address `RecordingFailed` (once per
//! broadcast). Checks that keep failing are reported once (`LiveCheckFailed`, then
//! `LiveCheckRecovered`).
//!
//! While a channel is live it is looked at every first step's wait (to see it end or change
//! title); the recorder follows the playlist meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use recbot_commands::Login;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::api::{ChzzkApi, ChzzkError, LiveDetail, LivePlayback};
use super::schedule::{Checks, Pacer};
use crate::config::PollStep;
use crate::event::EventKind;
use crate::work::Events;

/// Shortest time between two requests to Chzzk from detection, all channels together. Chzzk
/// documents no limit; tools poll a channel every 10–60 s and bulk calls risk an IP block
/// (notes 1.6): two requests a second is far below what one browser tab does.
pub const REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// Failed checks of a channel in a row before it is reported.
const FAILURES_BEFORE_REPORT: u32 = 3;

/// The watched channels (their `chzzk:<id>` keys) and when each was added: a channel removed
/// and added again is a new one (checked at once, from the top of the schedule).
pub type Wanted = BTreeMap<Login, DateTime<Utc>>;

/// The core's handle: which channels to watch, and when each is checked next.
#[derive(Debug, Clone)]
pub struct DetectorHandle {
    wanted: Arc<watch::Sender<Wanted>>,
    checks: Arc<Mutex<Checks<Login>>>,
}

impl DetectorHandle {
    /// The watched Chzzk channels. A channel added is checked at once, from the top of the
    /// schedule.
    pub fn set_wanted(&self, logins: Wanted) {
        self.wanted.send_if_modified(|now| {
            let changed = *now != logins;
            *now = logins;
            changed
        });
    }

    /// How long until `login` is checked next (`None`: not watched, or not yet seen by the
    /// detection task).
    pub fn next_check(&self, login: &Login) -> Option<Duration> {
        let at = self
            .checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_check(login)?;
        Some(at.saturating_duration_since(Instant::now()))
    }
}

/// Starts the detection task (tracked; ends with `cancel`).
pub fn spawn(
    api: ChzzkApi,
    steps: &[PollStep],
    events: Events,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> DetectorHandle {
    let (tx, rx) = watch::channel(Wanted::new());
    let checks = Arc::new(Mutex::new(Checks::new(steps)));
    let handle = DetectorHandle {
        wanted: Arc::new(tx),
        checks: checks.clone(),
    };
    let detector = Detector {
        api,
        live_recheck: steps.first().map_or(Duration::from_secs(60), |s| s.wait),
        events,
        checks,
        channels: HashMap::new(),
        added: HashMap::new(),
        pacer: Pacer::new(REQUEST_INTERVAL),
    };
    tracker.spawn(detector.run(rx, cancel));
    handle
}

/// What detection remembers of one channel.
#[derive(Debug, Default)]
struct Channel {
    /// The broadcast announced with `LiveDetected` (its live id; `Some(None)`: one without
    /// an id) and its title and category, until `StreamOffline`.
    announced: Option<Option<u64>>,
    title: String,
    category: Option<String>,
    /// The broadcast whose adult-only or unplayable state was reported.
    told: Option<Option<u64>>,
    failures: u32,
    reported_failing: bool,
}

struct Detector {
    api: ChzzkApi,
    live_recheck: Duration,
    events: Events,
    checks: Arc<Mutex<Checks<Login>>>,
    channels: HashMap<Login, Channel>,
    /// When each scheduled channel was added, as last told.
    added: HashMap<Login, DateTime<Utc>>,
    pacer: Pacer,
}

impl Detector {
    fn checks(&self) -> std::sync::MutexGuard<'_, Checks<Login>> {
        self.checks.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run(mut self, mut wanted: watch::Receiver<Wanted>, cancel: CancellationToken) {
        loop {
            let now_wanted = wanted.borrow_and_update().clone();
            self.reconcile(&now_wanted);
            let due = self.checks().next_due();
            let sleep = async {
                match due.as_ref() {
                    Some((_, at)) => tokio::time::sleep_until(*at).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = wanted.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
                _ = sleep => {}
            }
            let Some((login, _)) = due else { continue };
            let Some(id) = login.chzzk_id() else {
                self.checks().remove(&login);
                continue;
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.pacer.ready() => {}
            }
            let seen = tokio::select! {
                _ = cancel.cancelled() => return,
                seen = self.api.live_detail(&id) => seen,
            };
            if !wanted.borrow().contains_key(&login) {
                continue;
            }
            self.saw(&login, seen).await;
        }
    }

    /// Channels added are checked now; channels removed are forgotten (a removed live one
    /// gets no `StreamOffline`: the core stops its recording itself).
    fn reconcile(&mut self, wanted: &Wanted) {
        let now = Instant::now();
        let mut checks = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        for (login, added) in wanted {
            if self.added.get(login) != Some(added) {
                checks.add(login.clone(), now);
                self.added.insert(login.clone(), *added);
                self.channels.remove(login);
            }
        }
        self.channels.retain(|login, _| wanted.contains_key(login));
        self.added.retain(|login, _| wanted.contains_key(login));
        let gone: Vec<Login> = wanted_complement(&checks, wanted);
        for login in gone {
            checks.remove(&login);
        }
    }

    async fn emit(&self, login: &Login, kind: EventKind) {
        self.events.emit(Some(login.clone()), kind).await;
    }

    async fn saw(&mut self, login: &Login, seen: Result<(LiveDetail, LivePlayback), ChzzkError>) {
        let now = Instant::now();
        let (detail, playback) = match seen {
            Ok(seen) => seen,
            Err(e) => return self.failed(login, e, now).await,
        };
        let channel = self.channels.entry(login.clone()).or_default();
        channel.failures = 0;
        let recovered = std::mem::take(&mut channel.reported_failing);
        if recovered {
            self.emit(login, EventKind::LiveCheckRecovered).await;
        }
        if !detail.is_live() {
            self.checks().offline(login, now);
            let channel = self.channels.entry(login.clone()).or_default();
            channel.told = None;
            if let Some(live_id) = channel.announced.take() {
                let stream_id = live_id.map(|id| id.to_string());
                self.emit(login, EventKind::StreamOffline { stream_id })
                    .await;
            }
            return;
        }
        self.checks().live(login, now, self.live_recheck);
        let live_id = Some(detail.live_id);
        let channel = self.channels.entry(login.clone()).or_default();
        match detail.playable(&playback) {
            Ok(Some(_)) if channel.announced == live_id => {
                if channel.title != detail.title || channel.category != detail.category {
                    channel.title = detail.title.clone();
                    channel.category = detail.category.clone();
                    let kind = EventKind::StreamUpdated {
                        title: detail.title,
                        game: detail.category,
                    };
                    self.emit(login, kind).await;
                }
            }
            Ok(_) => {
                channel.announced = live_id;
                channel.told = None;
                channel.title = detail.title.clone();
                channel.category = detail.category.clone();
                let kind = EventKind::LiveDetected {
                    stream_id: detail.live_id.map(|id| id.to_string()),
                    display_name: detail.channel_name,
                    title: detail.title,
                    game: detail.category,
                    viewers: detail.concurrent_users,
                    started_at: None,
                    latency_secs: None,
                };
                self.emit(login, kind).await;
            }
            Err(_) if channel.told == live_id => {}
            Err(ChzzkError::AdultOnly(status)) => {
                channel.told = live_id;
                let kind = EventKind::LiveAdultOnly {
                    title: detail.title,
                    status,
                };
                self.emit(login, kind).await;
            }
            Err(e) => {
                channel.told = live_id;
                let kind = EventKind::RecordingFailed {
                    reason: e.to_string(),
                };
                self.emit(login, kind).await;
            }
        }
    }

    /// A check that did not get an answer: tried again after the first step's wait (the
    /// channel's place in the schedule kept); reported after a few in a row. A channel Chzzk
    /// does not know (any more) moves down the schedule like an offline one.
    async fn failed(&mut self, login: &Login, e: ChzzkError, now: Instant) {
        if !e.is_transient() {
            warn!(login = %login, error = %e, "Chzzk refused the live check");
            self.checks().offline(login, now);
        } else {
            debug!(login = %login, error = %e, "Chzzk live check failed");
            self.checks().failed(login, now, self.live_recheck);
        }
        let channel = self.channels.entry(login.clone()).or_default();
        channel.failures = channel.failures.saturating_add(1);
        if channel.failures >= FAILURES_BEFORE_REPORT && !channel.reported_failing {
            channel.reported_failing = true;
            let cycles = channel.failures;
            let kind = EventKind::LiveCheckFailed {
                reason: e.to_string(),
                cycles,
            };
            self.emit(login, kind).await;
        }
    }
}

/// The channels `checks` holds that are not wanted any more.
fn wanted_complement(checks: &Checks<Login>, wanted: &Wanted) -> Vec<Login> {
    checks
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .cloned()
        .collect()
}
