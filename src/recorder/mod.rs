//! Recording live HLS streams to disk, natively: one task per live session ([`session`]) polls
//! the media playlist, fetches every segment once in media-sequence order into a `.part` file,
//! skips ads, reports gaps, rolls parts, survives token expiry, and writes the sidecar when a
//! part is finished. `playlist` and `variant` read playlists (pure), `writer` owns the `.part`
//! file, `fetch` does HTTP with bounded retries, `lookahead` queues and downloads a take's
//! segments (retried while listed, capped, a bounded look-ahead), `gaps` folds gap notices and
//! caps their texts, `recovery` finishes parts left by a crash, `disk` watches free space, and
//! `hls_source` polls non-Twitch sources. File names, the sidecar (the metadata contract with
//! the uploader and the chat logger) and the file operations are [`crate::archive`]'s.
//!
//! The recorder never writes the state database: it reports through [`Events`] and the core
//! persists sessions and parts (invariant 3).

pub mod disk;
pub mod fetch;
mod gaps;
pub mod hls_source;
mod lookahead;
mod playlist;
pub mod recovery;
mod session;
pub mod source_guard;
mod variant;
pub mod vod_fill;
mod withheld;
pub mod writer;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use recbot_commands::{Login, Quality};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::archive::sidecar::Position;
use crate::config::{Config, Storage};
use crate::event::{Event, EventKind};
use crate::twitch::playback::Playback;
pub use crate::twitch::viewer::ViewerLogin;
use crate::work::Events;

/// Control messages a recording can queue before it blocks the core.
const CONTROL_QUEUE: usize = 16;

/// Settings every recording shares, from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub recordings_dir: PathBuf,
    pub file_template: String,
    pub max_part: Duration,
    pub offline_grace: Duration,
    pub stall_timeout: Duration,
    /// Data and checkpoint of a part fsynced at least this often.
    pub sync_interval: Duration,
    /// How big and slow one segment may be.
    pub limits: lookahead::Limits,
    /// Gaps within this long of the last gap notice are folded into one.
    pub gap_notice: Duration,
    /// Free space is checked after writing this many bytes (0: after every segment).
    pub disk_check_bytes: u64,
    /// The free-space limits.
    pub storage: Storage,
    /// Video codecs a recorded rendition may have (`[recording] codecs`).
    pub codecs: Vec<crate::rendition::Codec>,
    /// Write an HLS index beside each part (`[recording] index`).
    pub index: bool,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            recordings_dir: config.storage.recordings_dir(),
            file_template: config.recording.file_template.clone(),
            max_part: Duration::from_secs_f64(config.recording.max_part_hours * 3600.0),
            offline_grace: Duration::from_secs(config.twitch.offline_grace_secs),
            stall_timeout: Duration::from_secs(config.recording.stall_timeout_secs),
            sync_interval: Duration::from_secs(config.recording.sync_interval_secs),
            limits: lookahead::Limits::from_config(&config.recording),
            gap_notice: Duration::from_secs(config.recording.gap_notice_secs),
            disk_check_bytes: config.storage.disk_check_mb.saturating_mul(1_000_000),
            storage: config.storage.clone(),
            codecs: config.recording.codecs.clone(),
            index: config.recording.index,
        }
    }
}

/// Where a recording reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Twitch,
    /// Any HLS playlist address (master or media).
    Hls {
        url: String,
    },
    /// A Chzzk channel: the login is its `chzzk:<id>` key.
    Chzzk,
}

impl SourceSpec {
    /// The platform's word, as the sidecar's `platform` gives it.
    pub fn platform(&self) -> &'static str {
        match self {
            SourceSpec::Twitch => "twitch",
            SourceSpec::Hls { .. } => "hls",
            SourceSpec::Chzzk => "chzzk",
        }
    }
}

/// What the core asks the recorder to record: one session of one login.
#[derive(Debug, Clone)]
pub struct RecordingSpec {
    pub login: Login,
    pub source: SourceSpec,
    pub quality: Quality,
    /// Row id in the `sessions` table.
    pub session: i64,
    pub stream_id: Option<String>,
    pub display_name: Option<String>,
    pub title: String,
    pub game: Option<String>,
    /// The number of the first part this task writes (more than 1 when a session continues
    /// after a restart).
    pub first_part: u32,
    /// Where the session's previous part stopped (a session continued after a restart):
    /// recording goes on after it, and what was missed meanwhile is a reported gap.
    pub resume: Option<Position>,
    /// When Twitch says the stream started (live detection): a segment's place in the
    /// broadcast is its program date-time minus this when the playlist does not say it.
    pub stream_started: Option<DateTime<Utc>>,
}

/// Why a recording is asked to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The service is shutting down: parts are finished, the session stays open (a restart
    /// continues it).
    Shutdown,
    /// The session is over for another reason (login removed, disk full, a new stream id):
    /// finish and report `RecordingFinished`.
    Ended(String),
}

/// Messages from the core to a running recording.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// Title or game changed (a new chapter).
    Update {
        title: String,
        game: Option<String>,
    },
    /// Live detection no longer sees the stream.
    Offline,
    /// Live detection sees the same stream (again).
    Live,
    Stop(StopReason),
}

/// What `status <login>` shows about a recording in progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveStatus {
    /// Writing a part now (false while waiting out the offline grace period).
    pub recording: bool,
    pub part: u32,
    /// Current file, relative to recordings_dir.
    pub file: String,
    pub quality: String,
    pub session_started: Option<DateTime<Utc>>,
    /// Session totals, the current part included.
    pub bytes: u64,
    pub duration_secs: f64,
    pub gaps: u32,
    pub ad_breaks: u32,
    /// Parts finished by this task.
    pub parts: u32,
    /// The Twitch stream id, once known (from live detection, or learnt from the master
    /// playlist's `BROADCAST-ID` when live detection did not know it yet).
    pub stream_id: Option<String>,
    /// The recording ended because a different broadcast replaced the one it recorded.
    pub new_broadcast: bool,
}

impl LiveStatus {
    /// Average bitrate of what was written, bits per second.
    pub fn bitrate(&self) -> f64 {
        if self.duration_secs > 0.0 {
            self.bytes as f64 * 8.0 / self.duration_secs
        } else {
            0.0
        }
    }
}

/// The core's handle on one running recording.
#[derive(Debug, Clone)]
pub struct RecordingHandle {
    pub session: i64,
    control: mpsc::Sender<Control>,
    status: Arc<Mutex<LiveStatus>>,
    /// The session's own token (a child of the global one): a stop interrupts whatever the
    /// recording is waiting for (a download, a playlist) at once.
    cancel: CancellationToken,
    /// Why it was asked to stop (the first reason wins), read when the token fires.
    stopping: Arc<Mutex<Option<StopReason>>>,
}

impl RecordingHandle {
    /// The stream id of the broadcast being recorded, when known.
    pub fn stream_id(&self) -> Option<String> {
        self.status.lock().ok().and_then(|s| s.stream_id.clone())
    }

    /// A handle with no recording behind it (its task "ended" at once; tests of the core).
    #[cfg(test)]
    pub(crate) fn detached(session: i64) -> RecordingHandle {
        let (control, _) = mpsc::channel(1);
        RecordingHandle {
            session,
            control,
            status: Arc::default(),
            cancel: CancellationToken::new(),
            stopping: Arc::default(),
        }
    }

    /// Records the stream id live detection learnt for this recording (kept when one is
    /// known already). Returns the id now known.
    pub fn learn_stream_id(&self, id: &str) -> Option<String> {
        let mut status = self.status.lock().ok()?;
        Some(
            status
                .stream_id
                .get_or_insert_with(|| id.to_string())
                .clone(),
        )
    }

    /// Queues a control message; `false` when the recording has already ended (or its queue
    /// is full, which only a wedged recording causes). A stop also fires the session's token,
    /// so a download or a playlist request in progress is given up within moments.
    pub fn send(&self, control: Control) -> bool {
        if let Control::Stop(reason) = &control {
            if self.control.is_closed() {
                return false;
            }
            if let Ok(mut stopping) = self.stopping.lock() {
                stopping.get_or_insert_with(|| reason.clone());
            }
            let _ = self.control.try_send(control);
            self.cancel.cancel();
            return true;
        }
        self.control.try_send(control).is_ok()
    }

    pub fn is_finished(&self) -> bool {
        self.control.is_closed()
    }

    pub fn status(&self) -> LiveStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Starts recordings. Cheap to clone; owned by the core.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// What the sessions this recorder starts read with: Twitch's client; a session of an
    /// `add hls` source gets a recorder whose `http` is `hls_http` (see [`Recorder::start`]).
    http: fetch::Http,
    /// For `add hls` sources: guarded by `[recording]`'s source rules.
    hls_http: fetch::Http,
    playback: Playback,
    /// Chzzk's API (`[chzzk]`): live-detail gives a Chzzk recording its playlist.
    chzzk: crate::chzzk::api::ChzzkApi,
    settings: Arc<Settings>,
    events: Events,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    disk_probe: disk::Probe,
    /// Shared with the disk guard: one `DiskLow` per shortage.
    disk_announced: disk::Announced,
    /// Filling gaps from Twitch VODs (`None` with `[recording] vod_fill = false`).
    vod_fill: Option<vod_fill::VodFill>,
    /// Where sessions count segments, bytes and timings (the service's, see
    /// [`Recorder::with_metrics`]).
    metrics: Arc<crate::metrics::Metrics>,
}

impl Recorder {
    /// `tracker` and `shutdown` are the core's: shutdown waits for recordings to finish their
    /// files.
    pub fn new(
        config: &Config,
        events: Events,
        tracker: TaskTracker,
        shutdown: CancellationToken,
        viewer: ViewerLogin,
    ) -> Recorder {
        let http = fetch::client();
        // Live and VOD tokens are asked as the viewer login whenever it has a credential
        // (renditions above 1080p need one).
        let playback = Playback::new(http.clone(), &config.twitch)
            .with_device_file(
                config
                    .storage
                    .data_dir
                    .join(crate::twitch::device::FILE_NAME),
            )
            .with_viewer(viewer);
        let vod_fill = config.recording.vod_fill.then(|| vod_fill::VodFill {
            vods: Arc::new(crate::twitch::vod::Vods::new(
                http.clone(),
                &config.twitch,
                playback.clone(),
            )),
            http: fetch::Http::twitch(http.clone()),
            limits: lookahead::Limits::from_config(&config.recording),
            codecs: config.recording.codecs.clone(),
            poll: Duration::from_secs_f64(config.recording.vod_fill_poll_secs),
            events: events.clone(),
        });
        Recorder {
            vod_fill,
            playback,
            chzzk: crate::chzzk::api::ChzzkApi::from_config(
                crate::chzzk::api::client(),
                &config.chzzk,
            ),
            http: fetch::Http::twitch(http),
            hls_http: fetch::Http::guarded(source_guard::SourceGuard::from_config(
                &config.recording,
            )),
            settings: Arc::new(Settings::from_config(config)),
            events,
            tracker,
            shutdown,
            disk_probe: disk::Probe::statvfs(),
            disk_announced: disk::Announced::default(),
            metrics: Arc::default(),
        }
    }

    /// Counts into `metrics` (the service's registry) instead of a registry of its own.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Recorder {
        self.metrics = metrics;
        self
    }

    /// What the disk guard and the recordings have announced of the disk (for the guard).
    pub fn disk_announced(&self) -> disk::Announced {
        self.disk_announced.clone()
    }

    /// Measures free space while writing with `probe` instead of statvfs (tests).
    pub fn with_disk_probe(mut self, probe: disk::Probe) -> Recorder {
        self.disk_probe = probe;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The client for `add hls` sources (guarded).
    pub fn hls_http(&self) -> &fetch::Http {
        &self.hls_http
    }

    /// Starts filling a finished session's gaps from its VOD (a tracked task that ends with
    /// `VodFillDone`, or at shutdown); `false` when VOD fill is off.
    pub fn start_fill(&self, job: vod_fill::FillJob) -> bool {
        let Some(fill) = self.vod_fill.clone() else {
            return false;
        };
        self.tracker
            .spawn(fill.run(job, self.shutdown.child_token()));
        true
    }

    /// Starts recording a session; the task runs until the session is over or shutdown.
    pub fn start(&self, spec: RecordingSpec) -> RecordingHandle {
        let (tx, rx) = mpsc::channel(CONTROL_QUEUE);
        let status = Arc::new(Mutex::new(LiveStatus {
            session_started: Some(Utc::now()),
            part: spec.first_part,
            stream_id: spec.stream_id.clone(),
            ..Default::default()
        }));
        let cancel = self.shutdown.child_token();
        let stopping = Arc::new(Mutex::new(None));
        let handle = RecordingHandle {
            session: spec.session,
            control: tx,
            status: status.clone(),
            cancel: cancel.clone(),
            stopping: stopping.clone(),
        };
        let (login, session) = (spec.login.clone(), spec.session);
        // Only Twitch's own playlists and CDN are read without the source guard.
        let rec = match spec.source {
            SourceSpec::Twitch | SourceSpec::Chzzk => self.clone(),
            SourceSpec::Hls { .. } => Recorder {
                http: self.hls_http.clone(),
                ..self.clone()
            },
        };
        let task = session::Session::new(rec, spec, rx, status.clone(), stopping, cancel.clone());
        self.tracker.spawn(supervise(
            task.run(cancel),
            self.events.clone(),
            login,
            session,
            status,
        ));
        handle
    }
}

/// Runs a recording task; if it panics (a bug), the session is still closed and the failure
/// reported, so it is not left open forever with nobody recording it.
async fn supervise(
    task: impl std::future::Future<Output = ()>,
    events: Events,
    login: Login,
    session: i64,
    status: Arc<Mutex<LiveStatus>>,
) {
    let Err(panic) = std::panic::AssertUnwindSafe(task).catch_unwind().await else {
        return;
    };
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into());
    tracing::error!(%login, session, panic = %what, "a recording task crashed");
    let s = status.lock().map(|s| s.clone()).unwrap_or_default();
    let send = |kind| events.send(Event::now(Some(login.clone()), kind).in_session(session));
    send(EventKind::RecordingFailed {
        reason: format!(
            "the recording task crashed ({what}); the part being written is kept as .part and \
             finished at the next start"
        ),
    })
    .await;
    send(EventKind::RecordingFinished {
        parts: s.parts,
        duration_secs: s.duration_secs,
        bytes: s.bytes,
        gaps: s.gaps,
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_crashed_recording_task_still_closes_its_session() {
        let (tx, mut rx) = mpsc::channel(8);
        let status = Arc::new(Mutex::new(LiveStatus {
            parts: 2,
            bytes: 1000,
            duration_secs: 8.0,
            gaps: 1,
            ..Default::default()
        }));
        let login = Login::parse("foo").unwrap();
        supervise(
            async { panic!("overflow in a hostile playlist") },
            Events::new(tx),
            login,
            7,
            status,
        )
        .await;
        let failed = rx.recv().await.unwrap();
        assert_eq!(failed.session, Some(7));
        match failed.kind {
            EventKind::RecordingFailed { reason } => {
                assert!(reason.contains("hostile playlist"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let finished = rx.recv().await.unwrap();
        assert_eq!(finished.session, Some(7));
        assert_eq!(
            finished.kind,
            EventKind::RecordingFinished {
                parts: 2,
                duration_secs: 8.0,
                bytes: 1000,
                gaps: 1
            }
        );
        // A task that ends normally reports nothing more.
        let (tx, mut rx) = mpsc::channel(8);
        supervise(
            async {},
            Events::new(tx),
            Login::parse("foo").unwrap(),
            7,
            Arc::default(),
        )
        .await;
        assert!(rx.try_recv().is_err());
    }
}
