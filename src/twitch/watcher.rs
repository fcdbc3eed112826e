//! The live watcher: one task that knows which watched Twitch logins are live. Every
//! `poll_interval_secs` it checks all wanted logins — through Helix, 100 logins per request,
//! when app credentials are configured; otherwise by probing each login's playback path (GQL
//! token + usher, 404 = offline) plus batched GQL metadata for the live ones — and reports what
//! changed as events: `LiveDetected` once per stream, `StreamUpdated` on title/game changes,
//! `StreamOffline` when a live login disappears, and `LiveCheckFailed`/`LiveCheckRecovered`
//! when checks keep failing (wrong credentials, Twitch down).
//!
//! A failed check changes nothing: a login whose check failed keeps its last known state.
//!
//! With EventSub (`live_detection = "eventsub"`, or `auto` with app credentials) the watcher
//! also starts the EventSub task (`eventsub/`) and takes its [`Pushed`] notifications:
//! `stream.online` is reported as `LiveDetected` at once (title and game follow from a Helix
//! check of that login), `stream.offline` as `StreamOffline`. Helix is still polled as the
//! safety net, every `safety_net_interval_secs` while EventSub is up and every
//! `poll_interval_secs` while it is down. Helix lags EventSub by up to a minute or two, so for
//! [`HELIX_LAG`] after a push a poll that contradicts it is not believed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use recbot_commands::Login;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::app_token::AppToken;
use super::eventsub::{self, EventSubLink, EventSubStatus, Pushed};
use super::helix::{Helix, MAX_LOGINS_PER_REQUEST};
use super::metadata::{Metadata, BATCH};
use super::playback::{Master, Playback};
use crate::config::Config;
use crate::config::DetectionMode;
use crate::event::EventKind;
use crate::work::Events;

/// Probes in flight at once without credentials (each is a GQL POST and an usher GET).
const PROBE_CONCURRENCY: usize = 16;
/// Failed cycles in a row before operators are told.
const FAILED_CYCLES_BEFORE_REPORT: u32 = 3;
/// Pending recheck requests.
const RECHECK_QUEUE: usize = 64;
/// Helix requests in flight at once: 10 000 logins are 100 requests, too slow one by one for
/// a 10 s poll interval.
const HELIX_CONCURRENCY: usize = 4;
/// How long after an EventSub push a Helix answer saying otherwise is taken for Helix's lag.
const HELIX_LAG: Duration = Duration::from_secs(120);
/// EventSub pushes waiting for the watcher.
const PUSHED_QUEUE: usize = 256;

/// A recheck: forget `login`'s stream (`stream_id`, or whatever it is when `None`) at the
/// first check after the instant.
type Recheck = (Login, Option<String>, Instant);

/// What is known about a live login.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveInfo {
    pub stream_id: Option<String>,
    pub display_name: Option<String>,
    pub title: String,
    pub game: Option<String>,
    pub viewers: Option<u64>,
    pub started_at: Option<DateTime<Utc>>,
}

/// The watcher's state as `status` shows it.
#[derive(Debug, Clone, Default)]
pub struct WatcherStatus {
    /// `eventsub`, `helix` or `probe`.
    pub mode: &'static str,
    /// The current poll interval (with EventSub: the safety net's while it is up).
    pub interval_secs: u64,
    pub watched: usize,
    pub live: BTreeMap<Login, LiveInfo>,
    pub last_check: Option<DateTime<Utc>>,
    /// Requests the last full check needed.
    pub last_check_requests: u64,
    pub last_error: Option<String>,
    /// EventSub's part, in `eventsub` mode.
    pub eventsub: Option<EventSubStatus>,
    /// The latest check that asked about logins (full or not), for the core's stream
    /// samples.
    pub checked: Option<Checked>,
}

/// One live check: when, and which of the logins it asked about were live (their facts are
/// in [`WatcherStatus::live`]). `seq` grows by one per check, so a reader that missed some
/// (the status keeps only the latest) still samples each check it sees once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checked {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub live: Vec<Login>,
}

/// Tells the watcher what to watch and reads its status.
#[derive(Debug, Clone)]
pub struct WatcherHandle {
    wanted: Arc<watch::Sender<Vec<Login>>>,
    status: watch::Receiver<WatcherStatus>,
    recheck: mpsc::Sender<Recheck>,
    eventsub: Option<watch::Receiver<EventSubStatus>>,
}

impl WatcherHandle {
    /// Replaces the set of watched Twitch logins; new ones are checked at once.
    pub fn set_wanted(&self, mut logins: Vec<Login>) {
        logins.sort();
        logins.dedup();
        self.wanted.send_if_modified(|current| {
            let changed = *current != logins;
            *current = logins;
            changed
        });
    }

    /// A receiver of the status that wakes at each change (the core samples each check).
    pub fn changes(&self) -> watch::Receiver<WatcherStatus> {
        let mut rx = self.status.clone();
        rx.mark_unchanged();
        rx
    }

    pub fn status(&self) -> WatcherStatus {
        let mut status = self.status.borrow().clone();
        status.eventsub = self.eventsub.as_ref().map(|e| e.borrow().clone());
        status
    }

    /// `f` of the current status, without copying it (the status is locked while `f` runs,
    /// so `f` must be quick).
    pub fn with_status<R>(&self, f: impl FnOnce(&WatcherStatus) -> R) -> R {
        f(&self.status.borrow())
    }

    /// Forgets what is known about `login` at the first check after `after`, so that a stream
    /// still live then is reported again with `LiveDetected` (the recording of it ended while
    /// the stream went on). With `stream_id`, only that stream is forgotten: a newer one is
    /// already known and reported. Dropped when the watcher's queue is full: a later call
    /// repeats it.
    pub fn recheck(&self, login: Login, stream_id: Option<String>, after: Duration) {
        let _ = self
            .recheck
            .try_send((login, stream_id, Instant::now() + after));
    }

    /// A handle with no watcher behind it: the test sets the status and reads the rechecks.
    #[cfg(test)]
    pub(crate) fn detached() -> (
        WatcherHandle,
        watch::Sender<WatcherStatus>,
        mpsc::Receiver<Recheck>,
    ) {
        let (wanted, _) = watch::channel(Vec::new());
        let (status_tx, status) = watch::channel(WatcherStatus::default());
        let (recheck, rechecks) = mpsc::channel(RECHECK_QUEUE);
        let handle = WatcherHandle {
            wanted: Arc::new(wanted),
            status,
            recheck,
            eventsub: None,
        };
        (handle, status_tx, rechecks)
    }
}

/// What one check saw of one login: `Some` live, `None` offline.
type Observations = HashMap<Login, Option<Observed>>;

/// A live observation; fields a probe could not learn are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Observed {
    stream_id: Option<String>,
    display_name: Option<String>,
    title: Option<String>,
    game: Option<String>,
    viewers: Option<u64>,
    started_at: Option<DateTime<Utc>>,
}

// One per watcher, made once.
#[allow(clippy::large_enum_variant)]
enum Detector {
    Helix(Arc<Helix>),
    Probe {
        playback: Playback,
        metadata: Metadata,
    },
}

impl Detector {
    fn new(config: &Config, http: reqwest::Client) -> Detector {
        let t = &config.twitch;
        match (&t.client_id, &t.client_secret) {
            (Some(id), Some(secret)) if t.detection_mode() != DetectionMode::Probe => {
                let token = AppToken::new(http.clone(), &t.id_url, id, secret.clone());
                Detector::Helix(Arc::new(Helix::new(http, &t.helix_url, id, token)))
            }
            _ => Detector::Probe {
                playback: Playback::new(http.clone(), t)
                    .with_device_file(config.storage.data_dir.join(super::device::FILE_NAME)),
                metadata: Metadata::new(http, t),
            },
        }
    }

    fn mode(&self) -> &'static str {
        match self {
            Detector::Helix(_) => "helix",
            Detector::Probe { .. } => "probe",
        }
    }

    /// Checks `logins`; returns what was seen, the requests sent, and the errors met.
    async fn observe(&mut self, logins: &[Login]) -> (Observations, u64, Vec<String>) {
        match self {
            Detector::Helix(helix) => observe_helix(helix, logins).await,
            Detector::Probe { playback, metadata } => {
                observe_probe(playback, metadata, logins).await
            }
        }
    }
}

/// Live status from Helix `streams`, `MAX_LOGINS_PER_REQUEST` logins a request.
async fn observe_helix(helix: &Helix, logins: &[Login]) -> (Observations, u64, Vec<String>) {
    let mut seen = Observations::new();
    let mut errors = Vec::new();
    let before = helix.requests();
    // Built up front (not in a closure the stream keeps): keeps the future Send.
    let requests: Vec<_> = logins
        .chunks(MAX_LOGINS_PER_REQUEST)
        .map(|chunk| async move { (chunk, helix.streams(chunk).await) })
        .collect();
    let answers = futures::stream::iter(requests)
        .buffered(HELIX_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    for (chunk, answer) in answers {
        match answer {
            Ok(streams) => {
                let mut live: HashMap<String, _> = streams
                    .into_iter()
                    .filter(|s| s.kind.is_empty() || s.kind == "live")
                    .map(|s| (s.user_login.to_ascii_lowercase(), s))
                    .collect();
                for login in chunk {
                    let observed = live.remove(login.as_str()).map(|s| Observed {
                        stream_id: Some(s.id),
                        display_name: Some(s.user_name).filter(|n| !n.is_empty()),
                        title: Some(s.title),
                        game: Some(s.game_name).filter(|g| !g.is_empty()),
                        viewers: Some(s.viewer_count),
                        started_at: s.started_at,
                    });
                    seen.insert(login.clone(), observed);
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    (seen, helix.requests() - before, errors)
}

/// Live status by probing each login's master playlist, then the details of the live ones
/// from GQL.
async fn observe_probe(
    playback: &Playback,
    metadata: &Metadata,
    logins: &[Login],
) -> (Observations, u64, Vec<String>) {
    let mut seen = Observations::new();
    let mut errors = Vec::new();
    let probes = futures::stream::iter(logins.iter().cloned())
        .map(|login| async move {
            let result = playback.master_playlist(&login).await;
            (login, result)
        })
        .buffer_unordered(PROBE_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    // A token request and an usher request per login.
    let mut requests = 2 * logins.len() as u64;
    let mut live = Vec::new();
    for (login, result) in probes {
        match result {
            Ok(Master::Live { .. }) => {
                live.push(login.clone());
                seen.insert(login, Some(Observed::default()));
            }
            Ok(Master::Offline) => {
                seen.insert(login, None);
            }
            Err(e) => errors.push(format!("{login}: {e}")),
        }
    }
    live.sort();
    requests += add_metadata(metadata, &live, &mut seen).await;
    (seen, requests, errors)
}

/// Fills in the details of the `live` logins in `seen`, `BATCH` logins a request; returns the
/// requests sent.
async fn add_metadata(metadata: &Metadata, live: &[Login], seen: &mut Observations) -> u64 {
    let mut requests = 0;
    for chunk in live.chunks(BATCH) {
        requests += 1;
        match metadata.fetch(chunk).await {
            Ok(found) => {
                for (login, meta) in found {
                    let Some(Some(observed)) = seen.get_mut(&login) else {
                        continue;
                    };
                    observed.display_name = meta.display_name;
                    // GQL's stream status can lag usher by a minute: a live
                    // playlist with no GQL stream yet is live with unknown facts.
                    if let Some(stream) = meta.stream {
                        observed.stream_id = Some(stream.id);
                        observed.title = Some(stream.title);
                        observed.game = stream.game;
                        observed.viewers = stream.viewers;
                        observed.started_at = stream.started_at;
                    }
                }
            }
            // Liveness is known; only the details are missing this time.
            Err(e) => debug!(error = %e, "stream metadata unavailable"),
        }
    }
    requests
}

/// Merges one check into the known state and returns the events it implies.
fn diff(
    known: &mut BTreeMap<Login, LiveInfo>,
    observed: Observations,
    now: DateTime<Utc>,
) -> Vec<(Login, EventKind)> {
    let mut events = Vec::new();
    for (login, observation) in observed {
        // Taken out: every branch that keeps the login puts it back.
        let before = known.remove(&login);
        match (before, observation) {
            (None, None) => {}
            (Some(old), None) => {
                events.push((
                    login,
                    EventKind::StreamOffline {
                        stream_id: old.stream_id,
                    },
                ));
            }
            (before, Some(seen)) => {
                if is_new_stream(before.as_ref(), &seen) {
                    if let Some(old) = &before {
                        events.push((
                            login.clone(),
                            EventKind::StreamOffline {
                                stream_id: old.stream_id.clone(),
                            },
                        ));
                    }
                    let (info, detected) = went_live(seen, now);
                    events.push((login.clone(), detected));
                    known.insert(login, info);
                    continue;
                }
                let mut info = before.expect("not a new stream, so known");
                if let Some(updated) = merge(&mut info, seen) {
                    events.push((login.clone(), updated));
                }
                known.insert(login, info);
            }
        }
    }
    events
}

/// Whether `seen` is a broadcast other than the one known: none was known, or its stream id
/// differs (a probe that learnt no id is the same broadcast).
fn is_new_stream(before: Option<&LiveInfo>, seen: &Observed) -> bool {
    match (before, &seen.stream_id) {
        (None, _) => true,
        (Some(old), Some(id)) => old.stream_id.as_ref().is_some_and(|o| o != id),
        (Some(_), None) => false,
    }
}

/// The state of a broadcast just seen for the first time, and its `LiveDetected`.
fn went_live(seen: Observed, now: DateTime<Utc>) -> (LiveInfo, EventKind) {
    let info = LiveInfo {
        stream_id: seen.stream_id,
        display_name: seen.display_name,
        title: seen.title.unwrap_or_default(),
        game: seen.game,
        viewers: seen.viewers,
        started_at: seen.started_at,
    };
    let latency_secs = info
        .started_at
        .map(|s| (now - s).num_milliseconds().max(0) as f64 / 1000.0);
    let detected = EventKind::LiveDetected {
        stream_id: info.stream_id.clone(),
        display_name: info.display_name.clone(),
        title: info.title.clone(),
        game: info.game.clone(),
        viewers: info.viewers,
        started_at: info.started_at,
        latency_secs,
    };
    (info, detected)
}

/// Merges a new look at a known broadcast; `StreamUpdated` when its title or game changed.
fn merge(info: &mut LiveInfo, seen: Observed) -> Option<EventKind> {
    // Facts a probe could not learn this time keep their last value.
    info.stream_id = seen.stream_id.or(info.stream_id.take());
    info.display_name = seen.display_name.or(info.display_name.take());
    info.viewers = seen.viewers.or(info.viewers);
    info.started_at = seen.started_at.or(info.started_at);
    let title = seen.title?;
    if title == info.title && seen.game == info.game {
        return None;
    }
    info.title = title;
    info.game = seen.game;
    Some(EventKind::StreamUpdated {
        title: info.title.clone(),
        game: info.game.clone(),
    })
}

/// Starts the watcher task on `tracker`; it stops when `shutdown` is cancelled. `eventsub`:
/// what the EventSub task needs from the core (it runs in `eventsub` mode only).
pub fn spawn(
    config: &Config,
    events: Events,
    eventsub: Option<EventSubLink>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> WatcherHandle {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a TLS-capable HTTP client");
    let detector = Detector::new(config, http);
    let intervals = Intervals {
        poll: Duration::from_secs(config.twitch.poll_interval_secs()),
        safety_net: Duration::from_secs(config.twitch.safety_net_interval_secs),
    };
    let (wanted_tx, wanted_rx) = watch::channel(Vec::new());
    let (recheck_tx, recheck_rx) = mpsc::channel(RECHECK_QUEUE);
    let (pushed_tx, pushed_rx) = mpsc::channel(PUSHED_QUEUE);
    let pushing = match (&detector, eventsub) {
        (Detector::Helix(helix), Some(link))
            if config.twitch.detection_mode() == DetectionMode::EventSub =>
        {
            Some(eventsub::spawn(
                helix.clone(),
                &config.twitch,
                link,
                wanted_rx.clone(),
                pushed_tx,
                events.clone(),
                shutdown.clone(),
                tracker,
            ))
        }
        _ => None,
    };
    let mode = match pushing {
        Some(_) => "eventsub",
        None => detector.mode(),
    };
    let (status_tx, status_rx) = watch::channel(WatcherStatus {
        mode,
        interval_secs: intervals.poll.as_secs(),
        ..Default::default()
    });
    info!(
        mode,
        interval_secs = intervals.poll.as_secs(),
        "live watcher started"
    );
    let watcher = Watcher {
        detector,
        known: BTreeMap::new(),
        events,
        status: status_tx,
        failed_cycles: 0,
        reported_failure: false,
        recheck_at: HashMap::new(),
        intervals,
        pushing: pushing.is_some(),
        eventsub_up: false,
        pushed_at: HashMap::new(),
        checks: 0,
        checked: None,
    };
    tracker.spawn(watcher.run(wanted_rx, recheck_rx, pushed_rx, shutdown));
    WatcherHandle {
        wanted: Arc::new(wanted_tx),
        status: status_rx,
        recheck: recheck_tx,
        eventsub: pushing,
    }
}

/// The poll intervals: normal, and the safety net's while EventSub is up.
#[derive(Debug, Clone, Copy)]
struct Intervals {
    poll: Duration,
    safety_net: Duration,
}

/// The last EventSub push about a login: online (with the stream) or offline (with the
/// stream that ended), and when.
#[derive(Debug, Clone)]
struct LastPush {
    online: bool,
    stream_id: Option<String>,
    at: Instant,
}

struct Watcher {
    detector: Detector,
    known: BTreeMap<Login, LiveInfo>,
    events: Events,
    status: watch::Sender<WatcherStatus>,
    failed_cycles: u32,
    reported_failure: bool,
    /// Logins to forget (and so report again if live) at the first check after the instant;
    /// with a stream id, only while that stream is the one known.
    recheck_at: HashMap<Login, (Option<String>, Instant)>,
    intervals: Intervals,
    /// EventSub runs beside the polls.
    pushing: bool,
    eventsub_up: bool,
    pushed_at: HashMap<Login, LastPush>,
    /// Checks made, and the latest (see [`Checked`]).
    checks: u64,
    checked: Option<Checked>,
}

impl Watcher {
    async fn run(
        mut self,
        mut wanted: watch::Receiver<Vec<Login>>,
        mut recheck: mpsc::Receiver<Recheck>,
        mut pushed: mpsc::Receiver<Pushed>,
        shutdown: CancellationToken,
    ) {
        let mut last_cycle = Instant::now();
        let mut next_cycle = Instant::now();
        let mut checked: Vec<Login> = Vec::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Some((login, stream_id, at)) = recheck.recv() => {
                    self.recheck_at.insert(login, (stream_id, at));
                }
                Some(push) = pushed.recv(), if self.pushing => {
                    let now_due = self.pushed(push, &checked, &shutdown).await;
                    next_cycle = match now_due {
                        true => Instant::now(),
                        false => last_cycle + self.interval(),
                    };
                }
                _ = tokio::time::sleep_until(next_cycle) => {
                    let logins = wanted.borrow_and_update().clone();
                    // A cycle can take long (a rate-limit wait, thousands of probes): shutdown
                    // does not wait for it.
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = self.cycle(&logins, true) => {}
                    }
                    checked = logins;
                    last_cycle = Instant::now();
                    next_cycle = last_cycle + self.interval();
                }
                changed = wanted.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let logins = wanted.borrow_and_update().clone();
                    self.known.retain(|login, _| logins.binary_search(login).is_ok());
                    self.pushed_at.retain(|login, _| logins.binary_search(login).is_ok());
                    self.status.send_modify(|s| s.watched = logins.len());
                    let added: Vec<Login> = logins
                        .iter()
                        .filter(|l| checked.binary_search(l).is_err())
                        .cloned()
                        .collect();
                    if !added.is_empty() {
                        // A freshly added login is checked now, not a poll interval later.
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = self.cycle(&added, false) => {}
                        }
                    }
                    checked = logins;
                }
            }
        }
    }

    /// The poll interval now: the safety net's while EventSub is up.
    fn interval(&self) -> Duration {
        match self.eventsub_up {
            true => self.intervals.safety_net,
            false => self.intervals.poll,
        }
    }

    /// Takes one EventSub push about the `watched` logins; `true` when every login is to be
    /// checked now.
    async fn pushed(
        &mut self,
        push: Pushed,
        watched: &[Login],
        shutdown: &CancellationToken,
    ) -> bool {
        match push {
            Pushed::Up | Pushed::Down => {
                self.eventsub_up = push == Pushed::Up;
                let interval = self.interval().as_secs();
                self.status.send_modify(|s| s.interval_secs = interval);
                false
            }
            Pushed::CheckAll => true,
            Pushed::Online {
                login,
                stream_id,
                started_at,
            } => {
                if watched.binary_search(&login).is_err() {
                    return false;
                }
                let observed = Observed {
                    stream_id: Some(stream_id.clone()),
                    started_at,
                    ..Observed::default()
                };
                self.note_push(&login, true, Some(stream_id));
                let events = diff(
                    &mut self.known,
                    Observations::from([(login.clone(), Some(observed))]),
                    Utc::now(),
                );
                let detected = events
                    .iter()
                    .any(|(_, k)| matches!(k, EventKind::LiveDetected { .. }));
                for (login, kind) in events {
                    self.events.emit(Some(login), kind).await;
                }
                self.publish_status(0, None, false);
                if detected {
                    // Title and game: Helix knows them, unless it still lags.
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = self.cycle(std::slice::from_ref(&login), false) => {}
                    }
                }
                false
            }
            Pushed::Offline { login, stream_id } => {
                let Some(info) = self.known.get(&login) else {
                    return false;
                };
                let same = match (&stream_id, &info.stream_id) {
                    (Some(pushed), Some(known)) => pushed == known,
                    _ => true,
                };
                if same {
                    let info = self.known.remove(&login).expect("known");
                    self.note_push(&login, false, info.stream_id.clone());
                    let offline = EventKind::StreamOffline {
                        stream_id: info.stream_id,
                    };
                    self.events.emit(Some(login), offline).await;
                    self.publish_status(0, None, false);
                }
                false
            }
        }
    }

    fn note_push(&mut self, login: &Login, online: bool, stream_id: Option<String>) {
        let push = LastPush {
            online,
            stream_id,
            at: Instant::now(),
        };
        self.pushed_at.insert(login.clone(), push);
    }

    /// Drops what Helix says against a recent push: offline right after `stream.online`, or
    /// the ended stream still live right after `stream.offline` (Helix lags).
    fn believe(&mut self, observed: &mut Observations) {
        let now = Instant::now();
        self.pushed_at
            .retain(|_, p| now.duration_since(p.at) < HELIX_LAG);
        observed.retain(|login, seen| {
            let Some(push) = self.pushed_at.get(login) else {
                return true;
            };
            match (push.online, seen) {
                (true, None) => false,
                (false, Some(seen)) => seen.stream_id.is_none() || seen.stream_id != push.stream_id,
                _ => true,
            }
        });
    }

    /// Checks `logins`, emits what changed, updates the status. `full` cycles also count
    /// towards failure reporting and the request figure.
    async fn cycle(&mut self, logins: &[Login], full: bool) {
        if logins.is_empty() {
            self.publish_status(0, None, full);
            return;
        }
        let now = Instant::now();
        for login in logins {
            let Some((stream_id, at)) = self.recheck_at.get(login) else {
                continue;
            };
            if *at > now {
                continue;
            }
            let known = self.known.get(login).and_then(|i| i.stream_id.as_ref());
            let same = match (stream_id, known) {
                (Some(asked), Some(known)) => asked == known,
                _ => true,
            };
            if same {
                self.known.remove(login);
            }
            self.recheck_at.remove(login);
        }
        let (mut observed, requests, errors) = self.detector.observe(logins).await;
        if self.pushing {
            self.believe(&mut observed);
        }
        for (login, kind) in diff(&mut self.known, observed, Utc::now()) {
            self.events.emit(Some(login), kind).await;
        }
        self.note_checked(logins);
        let error = errors.first().cloned();
        if full {
            self.track_failures(error.as_deref(), errors.len(), logins.len())
                .await;
        }
        self.publish_status(requests, error, full);
    }

    async fn track_failures(&mut self, error: Option<&str>, failed: usize, total: usize) {
        match error {
            Some(reason) => {
                self.failed_cycles += 1;
                warn!(failed, total, reason, "live check failed");
                if self.failed_cycles >= FAILED_CYCLES_BEFORE_REPORT && !self.reported_failure {
                    self.reported_failure = true;
                    self.events
                        .emit(
                            None,
                            EventKind::LiveCheckFailed {
                                reason: reason.to_string(),
                                cycles: self.failed_cycles,
                            },
                        )
                        .await;
                }
            }
            None => {
                self.failed_cycles = 0;
                if self.reported_failure {
                    self.reported_failure = false;
                    self.events.emit(None, EventKind::LiveCheckRecovered).await;
                }
            }
        }
    }

    /// Records which of the checked `logins` are live, with the check's number (published
    /// with the status that follows).
    fn note_checked(&mut self, logins: &[Login]) {
        let live = logins
            .iter()
            .filter(|l| self.known.contains_key(*l))
            .cloned()
            .collect();
        self.checks += 1;
        self.checked = Some(Checked {
            seq: self.checks,
            at: Utc::now(),
            live,
        });
    }

    fn publish_status(&self, requests: u64, error: Option<String>, full: bool) {
        self.status.send_modify(|s| {
            s.live = self.known.clone();
            s.checked = self.checked.clone();
            if full {
                s.last_check = Some(Utc::now());
                s.last_check_requests = requests;
                s.last_error = error;
            }
        });
    }
}

#[cfg(test)]
mod tests;
