//! What the core answers to a command, as data: [`Reply`] says what happened ([`Said`]) or
//! why nothing did ([`Refusal`]), with the logins, figures, rows and events involved. The
//! core writes no sentences: every front-end renders a reply with the same words
//! (`frontend::render::reply`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use recbot_commands::{Login, ParseError, Service, Source};

use super::store::{JobState, UploadJob, Watch};
use crate::chat::ChatStatus;
use crate::event::Event;

/// The answer to a command.
#[derive(Debug, Clone)]
pub struct Reply {
    pub said: Said,
    /// Show only to the person who asked (ephemeral where the platform allows).
    pub private: bool,
    /// `false` when the command was refused or failed.
    pub ok: bool,
}

impl Reply {
    pub fn ok(said: Said) -> Reply {
        Reply {
            said,
            private: false,
            ok: true,
        }
    }

    pub fn refused(why: Refusal) -> Reply {
        Reply {
            said: Said::Refused(why),
            private: true,
            ok: false,
        }
    }

    /// The same reply, for the person who asked only.
    pub(super) fn private(mut self) -> Reply {
        self.private = true;
        self
    }
}

/// What a command did or found.
#[derive(Debug, Clone)]
pub enum Said {
    /// `help [topic]`.
    Help(Option<&'static str>),
    /// `add`: a new watch, or new options for one (`updated`). `uploads_disabled`: it uploads
    /// but `[youtube] enabled` is off.
    Added {
        watch: Watch,
        updated: bool,
        uploads_disabled: bool,
    },
    /// `add` of a login watched with these options already.
    AlreadyWatching(Watch),
    /// `remove`.
    Removed(Login),
    /// `list`; `operator`: who added each login and where is shown.
    List {
        watches: Vec<Watch>,
        operator: bool,
    },
    Status(Box<StatusReport>),
    Disk(Box<DiskReport>),
    /// `uploads`: the open and latest jobs; `links`: finished videos' addresses shown;
    /// `enabled`: `[youtube] enabled`.
    Uploads {
        jobs: Vec<UploadJob>,
        links: bool,
        enabled: bool,
    },
    /// `retry <id>` queued the job again.
    Requeued {
        id: u64,
        enabled: bool,
    },
    Quota(QuotaReport),
    /// `cut`: what was kept and written.
    Cut(Box<CutReport>),
    /// `auth`: where the operator goes next (a private reply).
    AuthLink(AuthLink),
    /// `code`: the service is connected.
    Connected(Connected),
    Refused(Refusal),
}

/// Why a command was refused or failed; nothing was changed unless said.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// The command's text did not parse.
    Unparsed(ParseError),
    /// The core no longer takes commands.
    ShuttingDown,
    /// The core stopped with the command in hand.
    StoppedBeforeAnswer,
    /// A checked `add` arrived while shutting down.
    ShuttingDownUnchanged,
    /// The core stopped while an `add`'s source was checked.
    StoppedBeforeAdd,
    /// The front-end lost the task that waited for the answer.
    AnswerLost,
    NotOperator {
        command: &'static str,
    },
    /// The state could not be read or written.
    Failed {
        command: &'static str,
        error: String,
    },
    /// `add hls` refused by the source guard (an address or host, never the URL).
    SourceRefused {
        name: Login,
        why: String,
    },
    /// `add` of a login watched from another source.
    WatchedAs {
        name: Login,
        source: Source,
    },
    NotWatched(Login),
    /// `add` of a channel its platform does not know (nothing stored).
    NoSuchChannel(Login),
    /// `add` of a channel whose platform could not be asked (network, refusal); nothing
    /// stored.
    ChannelLookupFailed {
        name: Login,
        error: String,
    },
    /// `add` on a platform recbot cannot record yet (Bilibili Live); nothing stored.
    PlatformNotAvailable(recbot_commands::Platform),
    /// `disk` failed; the reason only for operators.
    DiskFailed {
        error: Option<String>,
    },
    NoSuchUpload(u64),
    AlreadyUploaded {
        id: u64,
        url: String,
    },
    /// The job waits for YouTube (quota, upload limit) until then.
    UploadWaits {
        id: u64,
        until: Option<DateTime<Utc>>,
    },
    /// The job waits for its part's chat file, at most until then; it starts by itself.
    UploadWaitsForChatFile {
        id: u64,
        until: Option<DateTime<Utc>>,
    },
    UploadPaused(u64),
    /// The job is queued or uploading.
    UploadBusy {
        id: u64,
        state: JobState,
    },
    UploadFileGone {
        id: u64,
        path: PathBuf,
    },
    /// `auth …` could not start: the remote service's or flow's words.
    AuthFailed {
        command: &'static str,
        error: String,
    },
    AuthInterrupted {
        command: &'static str,
    },
    YoutubeClientMissing,
    TwitchClientMissing,
    /// `code` with no authorization pending.
    NothingAwaited(Service),
    AuthExpired {
        service: Service,
        started: DateTime<Utc>,
        minutes: Minutes,
    },
    /// `code twitch-viewer`: Twitch does not accept the token, or it cannot work for playback.
    ViewerTokenRefused(String),
    /// The pending Twitch authorization is a device flow.
    DeviceFlowPending,
    /// A Google code is being checked.
    StillChecking,
    /// A Twitch code is being exchanged.
    StillExchanging,
    /// Google's consent flow refused the code (its words).
    CodeRefused(String),
    /// The Google flow ended before the code was checked.
    AuthEnded,
    /// A pasted address of another `auth twitch` link.
    StateMismatch,
    /// A pasted address without `state` while a link is pending.
    StateMissing,
    /// A bare code while a link is pending.
    BareCode,
    TwitchRefusedCode(String),
    TwitchUnavailable(String),
    TokenNotSaved(String),
    ExchangeInterrupted,
    /// The remote service did not answer within the reply's limit.
    NoRemoteAnswer(Duration),
    /// `cut`: no such session of this login (`None`: it has none).
    NoSession {
        name: Login,
        session: Option<u64>,
    },
    /// `cut`: no one finished part of the session holds the span; `recorded` is how much the
    /// finished parts hold, `part_ends` where each ends (session time, seconds).
    SpanNotInOnePart {
        recorded: f64,
        part_ends: Vec<f64>,
        in_progress: bool,
    },
    /// `cut` itself failed (its words: a missing index or file, a name taken, …).
    CutFailed(String),
}

/// `cut`: the span kept (at segment boundaries) of which part, and the files written
/// (relative to the recordings folder).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CutReport {
    pub name: Login,
    pub session: i64,
    pub part: u32,
    /// The spans kept, in the part's time (seconds).
    pub kept: Vec<(f64, f64)>,
    /// Where the part starts in the session (seconds): kept spans + this = session time.
    pub part_offset_secs: f64,
    pub duration_secs: f64,
    pub files: Vec<PathBuf>,
    pub chat_lines: u64,
}

/// A pending authorization's lifetime in minutes (from the config).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Minutes(pub f64);

impl Minutes {
    pub(super) fn duration(self) -> Duration {
        Duration::from_secs_f64(self.0 * 60.0)
    }
}

/// Where `auth` sends the operator.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "flow", rename_all = "snake_case")]
pub enum AuthLink {
    Youtube {
        url: String,
        minutes: Minutes,
    },
    Twitch {
        url: String,
        redirect_uri: String,
        minutes: Minutes,
    },
    TwitchDevice {
        verification_uri: String,
        user_code: String,
        expires_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "service", rename_all = "snake_case")]
pub enum Connected {
    Youtube,
    /// `unmatched`: a bare code taken with no link pending to check it against.
    Twitch {
        login: Option<String>,
        unmatched: bool,
    },
    /// The viewer login (`code twitch-viewer`), as this Twitch account.
    TwitchViewer {
        login: String,
    },
}

/// `quota`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuotaReport {
    /// The Pacific date YouTube counts by.
    pub day: NaiveDate,
    pub used: u32,
    pub left: u32,
    pub limit: u32,
    pub next_reset: DateTime<Utc>,
    /// New uploads wait until then: the channel reached YouTube's upload limit.
    pub held_until: Option<DateTime<Utc>>,
    pub enabled: bool,
}

/// `disk`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DiskReport {
    pub used_percent: f64,
    pub free_bytes: u64,
    pub total_bytes: u64,
    pub level: DiskLevel,
    pub recordings_bytes: u64,
    /// For operators only.
    pub recordings_dir: Option<PathBuf>,
    pub chat_bytes: u64,
    /// For operators only.
    pub chat_dir: Option<PathBuf>,
    /// Recordings running.
    pub running: usize,
    /// How old the (cached) measurement is.
    pub age_secs: u64,
}

/// How full the disk is, against the configured limits.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(tag = "level", rename_all = "snake_case")]
pub enum DiskLevel {
    Fine,
    Warn { percent: u8 },
    Stop { min_free_gb: f64 },
}

/// `status` or `status <name>`.
#[derive(Debug, Clone)]
pub enum StatusReport {
    Service(ServiceStatus),
    Login(LoginStatus),
}

#[derive(Debug, Clone)]
pub struct ServiceStatus {
    pub version: &'static str,
    pub up_secs: u64,
    pub watching: usize,
    pub hls: usize,
    pub recording: usize,
    pub frontends: Vec<&'static str>,
    pub schema: i64,
    pub live: Option<LiveDetection>,
    /// The Twitch viewer login playback tokens are asked as (`None`: logged out).
    pub viewer: Option<String>,
    pub chat: Option<ChatLine>,
}

#[derive(Debug, Clone)]
pub struct LoginStatus {
    pub watch: Watch,
    pub live: Option<LiveOf>,
    pub recording: Option<RecordingNow>,
    /// Seconds until the next live check of a channel polled on a schedule (Chzzk).
    pub next_check_secs: Option<u64>,
    pub chat: Option<ChatLine>,
    /// The latest events, newest last (empty: none shown).
    pub recent: Vec<Event>,
}

/// The live watcher as a whole.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveDetection {
    /// `eventsub`, `helix` or `probe`.
    pub mode: &'static str,
    /// The poll interval now (with EventSub up: the safety net's).
    pub interval_secs: u64,
    pub live: usize,
    pub watched: usize,
    /// Seconds since the last full check, and the requests it needed.
    pub last_check: Option<(f64, u64)>,
    pub last_error: Option<String>,
    /// EventSub's part, in `eventsub` mode.
    pub eventsub: Option<EventSubNow>,
}

/// EventSub as `status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventSubNow {
    pub up: bool,
    pub held: usize,
    pub wanted: usize,
    /// The cost limit stops new subscriptions.
    pub full: bool,
    /// Seconds since the last notification.
    pub last_notification: Option<f64>,
    pub last_error: Option<String>,
}

/// One Twitch login's live state.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LiveOf {
    Unknown {
        error: String,
    },
    NotLive {
        interval_secs: u64,
    },
    Live {
        started_at: Option<DateTime<Utc>>,
        title: String,
        game: Option<String>,
        /// At the last live check.
        viewers: Option<u64>,
        /// The most seen at a live check of the session being recorded (its stream samples).
        #[serde(default)]
        peak_viewers: Option<u64>,
    },
}

/// A login's recording in progress.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RecordingNow {
    /// The offline grace period: waiting for the stream to come back.
    Waiting { session: i64, bytes: u64, gaps: u32 },
    Recording {
        part: u32,
        quality: String,
        /// Since the session started.
        for_secs: f64,
        duration_secs: f64,
        bytes: u64,
        bits_per_sec: f64,
        gaps: u32,
        ad_breaks: u32,
        file: String,
    },
}

/// The chat logger's part of `status`.
#[derive(Debug, Clone)]
pub enum ChatLine {
    /// `[chat] enabled = false`.
    Off,
    /// The chat logger did not answer in time.
    NoAnswer,
    Service(ChatStatus),
    Login(ChatStatus),
}
