//! Core glue for recording: live detection's events start, continue and end recording sessions;
//! sessions and parts are persisted here (the core is the only writer) from the recorder's
//! events; leftovers of a crash are finished at start-up; HLS sources get their pollers; the
//! disk guard runs; `status` and `disk` read from here. Start-up (crash leftovers, sessions
//! left open) is `restart.rs`.
//!
//! Sessions: `LiveDetected` opens one (before the event is persisted, so the event carries it),
//! unless the login's recording is still running or waiting out the offline grace period with
//! the same stream id — then it continues (a new part when the stream had dropped). A new
//! stream id ends the old session and opens a new one. A stream id unknown at first (probing
//! lags behind usher) is learnt later — from the master playlist's `BROADCAST-ID` by the
//! recorder, or from live detection — and persisted with the session. Sessions open at start-up
//! (the process was killed or stopped mid-broadcast) continue when live detection reports the
//! same stream soon after start-up, after the last segment their parts hold, and are closed
//! otherwise.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use recbot_commands::{Login, Source};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::disk_report::{DiskFigures, DiskReports};
use super::reply::{DiskLevel, DiskReport, RecordingNow, Refusal};
use super::{Answer, Core, Reply, Said};
use crate::archive::sidecar::Position;
use crate::config::Config;
use crate::event::{Event, EventKind};
use crate::recorder::{
    disk, hls_source, Control, Recorder, RecordingHandle, RecordingSpec, SourceSpec, StopReason,
};
use crate::work::Events;

/// A session left open by the previous run, waiting to be continued or closed.
#[derive(Debug, Clone)]
pub(super) struct Dormant {
    pub session: i64,
    pub stream_id: Option<String>,
    pub next_part: u32,
    /// Where its last part stopped in the stream.
    pub resume: Option<Position>,
}

/// What a recording whose session just ended knew (for the live recheck, see live.rs).
#[derive(Debug, Clone, Default)]
pub(super) struct EndedRecording {
    pub stream_id: Option<String>,
    /// It ended because another broadcast replaced the one it recorded.
    pub new_broadcast: bool,
}

/// Recording state owned by the core.
#[derive(Debug)]
pub(super) struct Recordings {
    pub(super) recorder: Recorder,
    pub(super) events: Events,
    pub(super) tracker: TaskTracker,
    pub(super) shutdown: CancellationToken,
    active: HashMap<Login, RecordingHandle>,
    /// Shared with the expiry tasks: whoever removes an entry first decides its fate.
    pub(super) dormant: Arc<Mutex<HashMap<Login, Dormant>>>,
    /// Logins being recorded; HLS pollers pause for them.
    recording_now: hls_source::Recording,
    pollers: HashMap<Login, (String, CancellationToken)>,
    /// `disk`'s shared, cached folder walk.
    disk_reports: DiskReports,
}

impl Recordings {
    pub(super) fn new(
        config: &Config,
        events: Events,
        tracker: TaskTracker,
        shutdown: CancellationToken,
        viewer: crate::twitch::viewer::ViewerLogin,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Recordings {
        Recordings {
            recorder: Recorder::new(
                config,
                events.clone(),
                tracker.clone(),
                shutdown.clone(),
                viewer,
            )
            .with_metrics(metrics),
            events,
            tracker,
            shutdown,
            active: HashMap::new(),
            dormant: Arc::new(Mutex::new(HashMap::new())),
            recording_now: Arc::new(Mutex::new(HashSet::new())),
            pollers: HashMap::new(),
            disk_reports: DiskReports::new(&config.storage),
        }
    }

    fn set_recording(&self, login: &Login, on: bool) {
        if let Ok(mut set) = self.recording_now.lock() {
            if on {
                set.insert(login.clone());
            } else {
                set.remove(login);
            }
        }
    }

    /// Recordings running now (finished tasks whose last event is still queued excluded).
    pub(super) fn running(&self) -> usize {
        self.active.values().filter(|h| !h.is_finished()).count()
    }

    /// The session of `login`'s recording (running, or ended with its `RecordingFinished`
    /// still to come), if any.
    pub(super) fn session_of(&self, login: &Login) -> Option<i64> {
        self.active.get(login).map(|h| h.session)
    }

    /// Whether `login` has a recording of another session than `session` (a newer broadcast).
    pub(super) fn records_other_session(&self, login: &Login, session: Option<i64>) -> bool {
        self.active
            .get(login)
            .is_some_and(|h| Some(h.session) != session)
    }

    #[cfg(test)]
    pub(super) fn insert_for_tests(&mut self, login: Login, handle: RecordingHandle) {
        self.active.insert(login, handle);
    }

    /// The recording of `login`'s `session` ended: it leaves the running set, and what it
    /// knew is returned (nothing known when another session of the login records now).
    fn remove_ended(&mut self, login: &Login, session: i64) -> EndedRecording {
        if self.active.get(login).is_none_or(|h| h.session != session) {
            return EndedRecording::default();
        }
        let h = self.active.remove(login).expect("checked");
        self.set_recording(login, false);
        let status = h.status();
        EndedRecording {
            stream_id: status.stream_id,
            new_broadcast: status.new_broadcast,
        }
    }
}

/// The same broadcast, as far as the ids tell.
fn same_stream(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

impl Core {
    /// How long after start-up a session left open may still be continued.
    pub(super) fn resume_window(&self) -> Duration {
        Duration::from_secs(
            self.config.twitch.offline_grace_secs + 2 * self.config.twitch.poll_interval_secs(),
        )
    }

    /// Runs before an event is persisted: live detection's events get their session (a new
    /// one is opened and recorded for `LiveDetected`).
    pub(super) async fn prepare_recording_event(&mut self, event: Event) -> Event {
        if event.session.is_some() {
            return event;
        }
        match &event.kind {
            EventKind::LiveDetected { .. } => self.on_live(event).await,
            EventKind::StreamUpdated { .. } | EventKind::StreamOffline { .. } => {
                let session = event
                    .login
                    .as_ref()
                    .and_then(|l| self.recordings.active.get(l))
                    .map(|h| h.session);
                match session {
                    Some(s) => event.in_session(s),
                    None => event,
                }
            }
            _ => event,
        }
    }

    async fn on_live(&mut self, event: Event) -> Event {
        let EventKind::LiveDetected {
            stream_id,
            display_name,
            title,
            game,
            started_at,
            ..
        } = &event.kind
        else {
            return event;
        };
        let Some(login) = event.login.clone() else {
            return event;
        };
        let watch = match self.store.watch(&login).await {
            Ok(Some(w)) => w,
            Ok(None) => return event,
            Err(e) => {
                error!(error = %e, "cannot read the watch list");
                return event;
            }
        };
        let source = match &watch.source {
            Source::Twitch => SourceSpec::Twitch,
            Source::Hls { url } => SourceSpec::Hls { url: url.clone() },
            Source::Chzzk => SourceSpec::Chzzk,
            // Nothing detects it yet; not recordable.
            Source::Bilibili => return event,
        };
        if let Some(session) = self.continue_running(&login, stream_id).await {
            return event.in_session(session);
        }
        let resume = self.take_dormant(&login, stream_id).await;
        if self.disk_refuses(&login).await {
            if let Some(d) = resume {
                self.close_session(&login, d.session).await;
            }
            return event;
        }
        let (session, first_part, position) = match resume {
            Some(d) => (d.session, d.next_part, d.resume),
            None => match self.open_session(&login, &event).await {
                Some(session) => (session, 1, None),
                None => return event,
            },
        };
        let spec = RecordingSpec {
            login: login.clone(),
            source,
            quality: watch.quality,
            session,
            stream_id: stream_id.clone(),
            display_name: display_name.clone(),
            title: title.clone(),
            game: game.clone(),
            first_part,
            resume: position,
            stream_started: *started_at,
        };
        let handle = self.recordings.recorder.start(spec);
        self.recordings.set_recording(&login, true);
        self.recordings.active.insert(login, handle);
        event.in_session(session)
    }

    /// The login's running recording goes on when it records the same stream (its session
    /// returned); one of another broadcast is stopped.
    async fn continue_running(&mut self, login: &Login, stream_id: &Option<String>) -> Option<i64> {
        let h = self.recordings.active.get(login)?;
        if !h.is_finished() {
            if same_stream(&h.stream_id(), stream_id) {
                let session = h.session;
                h.send(Control::Live);
                if let Some(id) = stream_id {
                    // Live detection may know the id the recording started without.
                    h.learn_stream_id(id);
                    self.persist_stream_id(session).await;
                }
                return Some(session);
            }
            info!(%login, "a new broadcast started; ending the previous session");
            h.send(Control::Stop(StopReason::Ended(
                "a new broadcast started".into(),
            )));
        }
        self.recordings.active.remove(login);
        None
    }

    /// The session left open by the previous run, when it recorded this stream (it is
    /// continued); one of another stream is closed.
    async fn take_dormant(&mut self, login: &Login, stream_id: &Option<String>) -> Option<Dormant> {
        let dormant = self
            .recordings
            .dormant
            .lock()
            .ok()
            .and_then(|mut d| d.remove(login))?;
        if same_stream(&dormant.stream_id, stream_id) {
            info!(%login, session = dormant.session, part = dormant.next_part, "continuing the session from before the restart");
            return Some(dormant);
        }
        self.close_session(login, dormant.session).await;
        None
    }

    /// Whether the recordings disk is too full to start (said as `RecordingFailed`).
    async fn disk_refuses(&mut self, login: &Login) -> bool {
        let dir = self.config.storage.recordings_dir();
        match disk::usage(&dir).await {
            Ok(u) if disk::level(&u, &self.config.storage) == disk::Level::Stop => {
                self.follow_up(Event::now(
                    Some(login.clone()),
                    EventKind::RecordingFailed {
                        reason: format!(
                            "not recording: only {:.1} GB free on the recordings disk (minimum {} GB)",
                            u.free_gb(),
                            self.config.storage.min_free_gb
                        ),
                    },
                ));
                true
            }
            Ok(_) => false,
            Err(e) => {
                warn!(error = %e, "cannot check free space; recording anyway");
                false
            }
        }
    }

    /// A new session for a `LiveDetected` event, persisted (`None`, said as
    /// `RecordingFailed`, when it cannot be).
    async fn open_session(&mut self, login: &Login, live: &Event) -> Option<i64> {
        let EventKind::LiveDetected {
            stream_id,
            title,
            game,
            ..
        } = &live.kind
        else {
            return None;
        };
        let created = self
            .store
            .create_session(
                login.as_str(),
                stream_id.as_deref(),
                title,
                game.as_deref(),
                live.at,
            )
            .await;
        match created {
            Ok(id) => Some(id),
            Err(e) => {
                error!(error = %e, "cannot persist the session");
                self.follow_up(Event::now(
                    Some(login.clone()),
                    EventKind::RecordingFailed {
                        reason: format!("cannot save the session: {e}"),
                    },
                ));
                None
            }
        }
    }

    /// Closes a session without a running recording: ended in the state, `RecordingFinished`
    /// with what its parts hold.
    async fn close_session(&mut self, login: &Login, session: i64) {
        let totals = self.store.session_totals(session).await.unwrap_or_default();
        self.follow_up(
            Event::now(
                Some(login.clone()),
                EventKind::RecordingFinished {
                    parts: totals.parts,
                    duration_secs: totals.duration_secs,
                    bytes: totals.bytes,
                    gaps: totals.gaps,
                },
            )
            .in_session(session),
        );
    }

    /// Reactions to recording events (after they are persisted, before they are announced).
    /// Returns, for a `RecordingFinished` of a session, what its recording knew (the live
    /// recheck's input); `None` for every other event.
    pub(super) async fn react_recording(&mut self, event: &Event) -> Option<EndedRecording> {
        let Some(login) = &event.login else {
            if let EventKind::DiskLow {
                stopped_recording: true,
                used_percent,
                free_gb,
            } = &event.kind
            {
                for h in self.recordings.active.values() {
                    h.send(Control::Stop(StopReason::Ended(disk::stop_reason(
                        *used_percent,
                        *free_gb,
                    ))));
                }
            }
            return None;
        };
        let mut ended = None;
        let result = match (&event.kind, event.session) {
            (EventKind::RecordingStarted { file, part, .. }, Some(s)) => {
                let path = self.config.storage.recordings_dir().join(file);
                let stored = self.store.start_part(s, *part, &path, event.at).await;
                self.learn_stream_id(login, s).await;
                stored
            }
            (
                EventKind::RecordingPartFinished {
                    part,
                    file,
                    bytes,
                    duration_secs,
                    gaps,
                    recovered,
                    ..
                },
                Some(s),
            ) => {
                self.store
                    .finish_part(
                        s,
                        *part,
                        file,
                        *bytes,
                        *duration_secs,
                        *gaps,
                        *recovered,
                        event.at,
                    )
                    .await
            }
            (EventKind::RecordingFinished { .. }, Some(s)) => {
                ended = Some(self.recordings.remove_ended(login, s));
                self.store.end_session(s, event.at).await
            }
            (EventKind::StreamUpdated { title, game }, Some(s)) => {
                if let Some(h) = self.recordings.active.get(login) {
                    h.send(Control::Update {
                        title: title.clone(),
                        game: game.clone(),
                    });
                }
                self.store
                    .update_session_title(s, title, game.as_deref())
                    .await
            }
            (EventKind::StreamOffline { .. }, Some(_)) => {
                if let Some(h) = self.recordings.active.get(login) {
                    h.send(Control::Offline);
                }
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            error!(error = %e, kind = event.kind_name(), "cannot persist the recording state");
        }
        ended
    }

    /// Once a recording's first part is on disk: its stream id, when the recorder learnt it
    /// from the master playlist or live detection knows it by now, is kept with the session.
    async fn learn_stream_id(&mut self, login: &Login, session: i64) {
        let Some(h) = self
            .recordings
            .active
            .get(login)
            .filter(|h| h.session == session)
        else {
            return;
        };
        if h.stream_id().is_none() {
            let watched = self.watcher.as_ref().and_then(|w| {
                w.with_status(|s| s.live.get(login).and_then(|i| i.stream_id.clone()))
            });
            if let Some(id) = watched {
                h.learn_stream_id(&id);
            }
        }
        self.persist_stream_id(session).await;
    }

    /// Stores the stream id the recording of `session` knows, if the session has none yet.
    async fn persist_stream_id(&self, session: i64) {
        let Some(id) = self
            .recordings
            .active
            .values()
            .find(|h| h.session == session)
            .and_then(|h| h.stream_id())
        else {
            return;
        };
        if let Err(e) = self.store.learn_session_stream_id(session, &id).await {
            error!(error = %e, "cannot persist the stream id");
        }
    }

    /// Whether the login is being recorded now.
    pub(super) fn is_recording(&self, login: &Login) -> bool {
        self.recordings.active.contains_key(login)
    }

    /// Stops the login's recording, if one runs: another node owns the login now.
    pub(super) fn stop_recording_of(&self, login: &Login) {
        if let Some(h) = self.recordings.active.get(login) {
            h.send(Control::Stop(StopReason::Ended(
                "another node owns this login now".into(),
            )));
        }
    }

    /// After the watch list changed: recordings of removed logins stop (their files are
    /// finished and kept); HLS sources get pollers.
    pub(super) async fn reconcile_recordings(&mut self) {
        let watches = match self.owned_watches().await {
            Ok(w) => w,
            Err(e) => {
                error!(error = %e, "cannot read the watch list");
                return;
            }
        };
        let watched: HashMap<&Login, &Source> =
            watches.iter().map(|w| (&w.name, &w.source)).collect();
        for (login, h) in &self.recordings.active {
            if !watched.contains_key(login) {
                h.send(Control::Stop(StopReason::Ended("no longer watched".into())));
            }
        }
        self.recordings.pollers.retain(|login, (url, cancel)| {
            let keep = matches!(watched.get(login), Some(Source::Hls { url: u }) if u == url);
            if !keep {
                cancel.cancel();
            }
            keep
        });
        let every = Duration::from_secs(self.config.twitch.poll_interval_secs());
        for w in &watches {
            let Source::Hls { url } = &w.source else {
                continue;
            };
            if self.recordings.pollers.contains_key(&w.name) {
                continue;
            }
            let cancel = self.recordings.shutdown.child_token();
            self.recordings.tracker.spawn(hls_source::poll(
                hls_source::HlsSource {
                    name: w.name.clone(),
                    url: url.clone(),
                    every,
                    http: self.recordings.recorder.hls_http().clone(),
                    recording: self.recordings.recording_now.clone(),
                    events: self.recordings.events.clone(),
                },
                cancel.clone(),
            ));
            self.recordings
                .pollers
                .insert(w.name.clone(), (url.clone(), cancel));
        }
    }

    /// `status <login>`: the recording in progress, if any.
    pub(super) fn recording_now(&self, login: &Login) -> Option<RecordingNow> {
        let h = self.recordings.active.get(login)?;
        if h.is_finished() {
            return None;
        }
        let s = h.status();
        if !s.recording {
            return Some(RecordingNow::Waiting {
                session: h.session,
                bytes: s.bytes,
                gaps: s.gaps,
            });
        }
        let for_secs = s
            .session_started
            .map(|t| (Utc::now() - t).num_seconds().max(0) as f64)
            .unwrap_or(0.0);
        Some(RecordingNow::Recording {
            part: s.part,
            for_secs,
            duration_secs: s.duration_secs,
            bytes: s.bytes,
            bits_per_sec: s.bitrate(),
            gaps: s.gaps,
            ad_breaks: s.ad_breaks,
            quality: s.quality,
            file: s.file,
        })
    }

    pub(super) fn recordings_running(&self) -> usize {
        self.recordings.running()
    }

    /// `disk`: usage of the recordings and chat folders and free space. Walking the folders
    /// can take long (tens of thousands of chat files on a slow disk), so the answer comes
    /// from a worker task: the core goes on meanwhile. Walks are shared and cached
    /// (`disk_report.rs`). Absolute paths are for operators only: anyone in the room may run
    /// `disk`.
    pub(super) fn disk_command(&self, operator: bool) -> Answer {
        let storage = self.config.storage.clone();
        let running = self.recordings.running();
        let reports = self.recordings.disk_reports.clone();
        Answer::Later(Box::pin(async move {
            match reports.figures().await {
                Ok(figures) => disk_report(&storage, &figures, running, operator),
                Err(e) => {
                    error!(error = %e, "disk report failed");
                    Reply::refused(Refusal::DiskFailed {
                        error: operator.then(|| format!("{e:#}")),
                    })
                }
            }
        }))
    }

    /// `disk`'s shared walk (its counter of walks, for tests).
    #[cfg(test)]
    pub(super) fn disk_reports(&self) -> DiskReports {
        self.recordings.disk_reports.clone()
    }
}

/// The `disk` answer: free space, folder sizes (with their paths for operators), recordings
/// running, and how old the measurement is when it came from the cache.
fn disk_report(
    storage: &crate::config::Storage,
    figures: &DiskFigures,
    running: usize,
    operator: bool,
) -> Reply {
    let usage = &figures.usage;
    let level = match disk::level(usage, storage) {
        disk::Level::Fine => DiskLevel::Fine,
        disk::Level::Warn => DiskLevel::Warn {
            percent: storage.warn_usage_percent,
        },
        disk::Level::Stop => DiskLevel::Stop {
            min_free_gb: storage.min_free_gb,
        },
    };
    let place = |path: &std::path::Path| operator.then(|| path.to_path_buf());
    Reply::ok(Said::Disk(Box::new(DiskReport {
        used_percent: usage.used_percent(),
        free_bytes: usage.free_bytes,
        total_bytes: usage.total_bytes,
        level,
        recordings_bytes: figures.recordings_bytes,
        recordings_dir: place(&figures.recordings),
        chat_bytes: figures.chat_bytes,
        chat_dir: place(&figures.chat),
        running,
        age_secs: figures.at.elapsed().as_secs(),
    })))
}
