//! The one vocabulary that flows workers → core → front-ends: [`Event`] (what happened), and
//! [`Room`] (where commands come from and events go).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use recbot_commands::Login;
use serde::{Deserialize, Serialize};

use crate::rendition::Withheld;

/// Something that happened, as persisted in the event log and shown to operators.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub at: DateTime<Utc>,
    /// The watched login the event is about; `None` for service-wide events.
    pub login: Option<Login>,
    /// The broadcast (row of the `sessions` table) the event belongs to, when it belongs to
    /// one; front-ends keep one thread per session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<i64>,
    pub kind: EventKind,
}

impl Event {
    pub fn now(login: Option<Login>, kind: EventKind) -> Event {
        Event {
            at: Utc::now(),
            login,
            session: None,
            kind,
        }
    }

    /// The same event, tagged with its session.
    pub fn in_session(mut self, session: i64) -> Event {
        self.session = Some(session);
        self
    }

    /// The variant's name, stored as the event log's `kind` column.
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }
}

/// Every kind of event. Variants carry what an operator needs to read in chat; nothing secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum EventKind {
    /// The service started and reconciled its persisted state.
    ServiceStarted {
        version: String,
        watching: usize,
    },
    /// Shutdown began (SIGINT/SIGTERM); workers are finishing their files.
    ServiceStopping,
    /// Audit: a login was added to (or its options changed in) the watch list.
    WatchAdded {
        by: String,
        room: Room,
        options: String,
    },
    /// Audit: a login was removed from the watch list.
    WatchRemoved {
        by: String,
        room: Room,
    },
    /// Audit: a command was refused because the user is not an operator.
    CommandRefused {
        by: String,
        room: Room,
        command: String,
    },

    // --- live detection and recording (src/twitch/, src/recorder/) ---
    /// A watched login went live. `latency_secs`: from the stream's start (as Twitch reports
    /// it) to detection.
    LiveDetected {
        stream_id: Option<String>,
        /// The broadcaster's display name (`Foo` for login `foo`) when known.
        display_name: Option<String>,
        title: String,
        game: Option<String>,
        viewers: Option<u64>,
        /// When Twitch says the stream started.
        started_at: Option<DateTime<Utc>>,
        latency_secs: Option<f64>,
    },
    /// Title or game changed while live (a chapter in the sidecar and the video description).
    StreamUpdated {
        title: String,
        game: Option<String>,
    },
    /// The live check no longer sees the stream (reported at once; the offline grace period
    /// that decides whether the session ended is the recorder's business).
    StreamOffline {
        stream_id: Option<String>,
    },
    /// Live checks have failed `cycles` times in a row (wrong credentials, Twitch down);
    /// live streams may be missed until they recover.
    LiveCheckFailed {
        reason: String,
        cycles: u32,
    },
    /// Live checks work again after [`EventKind::LiveCheckFailed`].
    LiveCheckRecovered,
    /// The channel is live but its stream is for adults only and recbot has no login cookies
    /// of an adult-verified account ([chzzk] nid_aut/nid_ses): not recorded. Once per
    /// broadcast.
    LiveAdultOnly {
        title: String,
        /// What the platform said about the viewer (`NOT_LOGIN_USER`, …), when it said it.
        status: Option<String>,
    },
    /// EventSub sessions failed several times in a row: live streams are found by polling
    /// Helix every `polling_secs` until EventSub works again.
    EventSubDown {
        reason: String,
        polling_secs: u64,
    },
    /// EventSub works again after [`EventKind::EventSubDown`].
    EventSubUp,
    /// Twitch revoked an EventSub subscription (`stream.online`/`stream.offline`) of the
    /// login; `reason` is Twitch's status (`user_removed`, `authorization_revoked`, …). The
    /// login is still found by the Helix safety net.
    EventSubRevoked {
        subscription: String,
        reason: String,
    },
    /// The app's EventSub cost limit stops new subscriptions: `held` of `wanted` are held;
    /// the others are found by the Helix safety net only.
    EventSubLimitReached {
        held: usize,
        wanted: usize,
    },
    /// Bytes of a new part are being written; `file` is relative to recordings_dir.
    RecordingStarted {
        file: String,
        quality: String,
        part: u32,
    },
    /// Once per session: better renditions are on air than the one recorded (withheld from
    /// this viewer by Twitch, or in a codec `[recording] codecs` excludes), or only audio is
    /// recorded because no video rendition was offered or allowed (`audio_only`).
    RenditionWithheld {
        /// The rendition recorded (`1080p60`, `audio_only`).
        recorded: String,
        /// Best first.
        withheld: Vec<Withheld>,
        audio_only: bool,
    },
    /// Segments that could not be fetched (after retries) or fell out of the playlist window.
    RecordingGap {
        first_sequence: u64,
        last_sequence: u64,
        seconds: f64,
        reason: String,
    },
    /// An ad break was cut out of the recording.
    AdBreak {
        duration_secs: f64,
    },
    /// No new segment for `seconds` although the stream is live; recbot re-resolved the
    /// playlist and it still does not move.
    RecordingStalled {
        seconds: u64,
    },
    /// One part is complete on disk (renamed from `.part`, fsynced) with its sidecar.
    RecordingPartFinished {
        part: u32,
        /// Absolute path of the finished file.
        file: PathBuf,
        /// Absolute path of its sidecar (`<name>.json`).
        sidecar: PathBuf,
        bytes: u64,
        duration_secs: f64,
        gaps: u32,
        recovered: bool,
    },
    /// The broadcast ended and every part is finished.
    RecordingFinished {
        parts: u32,
        duration_secs: f64,
        bytes: u64,
        gaps: u32,
    },
    /// Recording could not start or continue.
    RecordingFailed {
        reason: String,
    },
    /// A gap of a finished session was filled from the broadcast's VOD: `file` (absolute)
    /// beside part `part` holds `seconds` of the VOD covering it.
    GapFilled {
        part: u32,
        file: PathBuf,
        seconds: f64,
        /// Twitch had muted some of it (copyrighted audio): the fill is the muted copy.
        muted: bool,
        vod_id: String,
    },
    /// Gaps of a finished session could not be filled from the VOD (none found, sub-only,
    /// deleted, still processing when the wait ran out, segments refused); they stay gaps.
    VodFillFailed {
        reason: String,
        /// Gaps (and their seconds) that stay unfilled.
        gaps: u32,
        seconds: f64,
    },
    /// Audit: the VOD fill of a session is over (`GapFilled`/`VodFillFailed` said how), so
    /// the core forgets its job.
    VodFillDone {
        filled: u32,
        unfilled: u32,
    },
    /// The recordings disk is fuller than `warn_usage_percent`, or below `min_free_gb` (then
    /// recording stopped cleanly).
    DiskLow {
        used_percent: f64,
        free_gb: f64,
        stopped_recording: bool,
    },

    // --- chat logging (src/chat/) ---
    ChatJoined {
        rooms: usize,
    },
    ChatDisconnected {
        reason: String,
    },
    ChatReconnected {
        offline_secs: f64,
    },
    /// Lines received but not written because the disk could not keep up.
    ChatDropped {
        lines: u64,
    },
    /// The chat stream (`[chat] stream_url`) could not reach NATS JetStream, or it did not
    /// acknowledge in time: chat lines are spooled under `data_dir` and sent in order once it
    /// answers again (the day files are not affected). `waiting`: lines in the spool now.
    ChatStreamBehind {
        waiting: u64,
    },
    /// The chat stream's spool was full: `lines` chat lines were left out of the stream since
    /// the last report (the day files keep them).
    ChatStreamDropped {
        lines: u64,
    },
    /// The chat of a finished recording part was written beside it (`<name>.chat.jsonl`).
    ChatSaved {
        part: u32,
        /// Absolute path of the chat file.
        file: PathBuf,
        lines: u64,
    },
    /// The chat file of a finished part could not be written (the day logs still have it).
    ChatSaveFailed {
        part: u32,
        reason: String,
    },
    /// The chat replay subtitles of a finished part (`[chat] subtitles`) could not be written;
    /// its chat file was saved.
    ChatReplayFailed {
        part: u32,
        reason: String,
    },
    /// A Chzzk or Bilibili chat connection kept failing (or cannot work, e.g. an adult
    /// channel without cookies): that channel's chat is no longer logged.
    ChatGaveUp {
        platform: String,
        attempts: u32,
        reason: String,
    },
    /// A Chzzk or Bilibili chat frame recbot cannot read (kept raw in the day file with the
    /// reason); reported once per room, the room keeps running.
    ChatUnreadable {
        platform: String,
        reason: String,
    },
    /// The platform's risk control refused (Bilibili `-352`, HTTP 412): its chat requests
    /// pause; reported once until a request works again.
    ChatPaused {
        platform: String,
        seconds: u64,
        reason: String,
    },

    // --- OAuth and uploads (src/upload/, src/twitch/) ---
    /// A human must (re)authorize `service`. `url` is always `None` now (kept so older event
    /// logs still read): a consent link is only ever given privately, as the reply to `auth`.
    AuthRequired {
        service: String,
        reason: String,
        url: Option<String>,
    },
    AuthCompleted {
        service: String,
        account: Option<String>,
    },
    UploadQueued {
        job: i64,
        file: String,
    },
    UploadStarted {
        job: i64,
        file: String,
        bytes: u64,
        /// Bytes YouTube already had (a resumed upload); 0 for a fresh start.
        #[serde(default)]
        from_bytes: u64,
    },
    UploadProgress {
        job: i64,
        sent_bytes: u64,
        total_bytes: u64,
        bytes_per_sec: f64,
    },
    /// The job waits (quota, upload limit, backoff, missing authorization) until `until`.
    UploadDeferred {
        job: i64,
        reason: String,
        until: DateTime<Utc>,
    },
    UploadFinished {
        job: i64,
        video_id: String,
        url: String,
    },
    UploadFailed {
        job: i64,
        reason: String,
    },
    /// Post-processing (`[postprocess] mode`, `remux` or `transcode`) of a finished part began;
    /// its upload waits for it.
    PostStarted {
        job: i64,
        file: String,
        mode: String,
    },
    /// How far ffmpeg is (throttled; front-ends edit one message in place).
    PostProgress {
        job: i64,
        done_secs: f64,
        /// The part's length (0 when unknown).
        total_secs: f64,
        speed: Option<f64>,
    },
    /// The MP4 is written and verified with ffprobe; the upload takes it instead of the part.
    PostFinished {
        job: i64,
        /// As shown (relative to the recordings folder).
        file: String,
        /// Where it is, for the core.
        output: PathBuf,
        bytes: u64,
        secs: f64,
        /// Media seconds per second of work.
        speed: f64,
        /// `keep_original = false`: the recorded part was removed.
        original_removed: bool,
    },
    /// Post-processing failed: the part stays as recorded and is uploaded as it is. Without a
    /// job: ffmpeg does not run at start-up (`reason` says why).
    PostFailed {
        job: Option<i64>,
        file: Option<String>,
        reason: String,
        /// ffmpeg's last error lines.
        #[serde(default)]
        ffmpeg_lines: Vec<String>,
    },
    /// A finished broadcast's summary chart (`<first part>.summary.png`) was written beside
    /// its first part; the chat front-ends post it in the broadcast's thread as an image.
    SummaryReady {
        /// Absolute path of the chart.
        path: PathBuf,
        /// Samples and chat lines it shows (for people: an empty chart says why).
        samples: u32,
        chat_lines: u64,
    },
    /// The summary chart could not be made (reported once; nothing else waits for it).
    SummaryFailed {
        reason: String,
    },
    /// With `after_upload = "delete"`: YouTube refused the uploaded video (or never finished
    /// processing it), so its files were not deleted.
    UploadFilesKept {
        job: i64,
        file: String,
        reason: String,
    },

    // --- deliveries to outside receivers (src/frontend/webhook.rs, email.rs) ---
    /// A webhook's receiver refused event-log entry `delivery` (an `event` event) for good
    /// (HTTP `status`, a 4xx other than 408/429, or a redirect): it was skipped for that
    /// webhook; later events go on.
    WebhookRefused {
        webhook: String,
        delivery: i64,
        event: String,
        status: u16,
    },
    /// Deliveries to `to` (`webhook <name>`, `e-mail`) have failed `attempts` times in a row
    /// (unreachable, timeouts, 5xx or 4xx answers that may pass): events wait, nothing is
    /// skipped; reported once per stuck event.
    DeliveryFailing {
        to: String,
        attempts: u32,
        reason: String,
    },
    /// The SMTP server refused a digest mail for good (a 5xx answer, `code`): its events
    /// (event-log ids `first` to `last`) are not mailed; later ones are.
    EmailRefused {
        code: u16,
        reason: String,
        events: u32,
        first: i64,
        last: i64,
    },
}

impl EventKind {
    /// Every kind's stable name, as [`EventKind::name`] gives it (config filters are checked
    /// against this list).
    pub const NAMES: &'static [&'static str] = &[
        "EventSubDown",
        "EventSubUp",
        "EventSubRevoked",
        "EventSubLimitReached",
        "ServiceStarted",
        "ServiceStopping",
        "WatchAdded",
        "WatchRemoved",
        "CommandRefused",
        "LiveDetected",
        "StreamUpdated",
        "StreamOffline",
        "LiveCheckFailed",
        "LiveCheckRecovered",
        "LiveAdultOnly",
        "RecordingStarted",
        "RenditionWithheld",
        "RecordingGap",
        "AdBreak",
        "RecordingStalled",
        "RecordingPartFinished",
        "RecordingFinished",
        "RecordingFailed",
        "GapFilled",
        "VodFillFailed",
        "VodFillDone",
        "DiskLow",
        "ChatJoined",
        "ChatDisconnected",
        "ChatReconnected",
        "ChatDropped",
        "ChatStreamBehind",
        "ChatStreamDropped",
        "ChatSaved",
        "ChatSaveFailed",
        "ChatReplayFailed",
        "ChatGaveUp",
        "ChatUnreadable",
        "ChatPaused",
        "AuthRequired",
        "AuthCompleted",
        "UploadQueued",
        "UploadStarted",
        "UploadProgress",
        "UploadDeferred",
        "UploadFinished",
        "UploadFailed",
        "UploadFilesKept",
        "SummaryReady",
        "SummaryFailed",
        "PostStarted",
        "PostProgress",
        "PostFinished",
        "PostFailed",
        "WebhookRefused",
        "EmailRefused",
        "DeliveryFailing",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            EventKind::ServiceStarted { .. } => "ServiceStarted",
            EventKind::ServiceStopping => "ServiceStopping",
            EventKind::WatchAdded { .. } => "WatchAdded",
            EventKind::WatchRemoved { .. } => "WatchRemoved",
            EventKind::CommandRefused { .. } => "CommandRefused",
            EventKind::LiveDetected { .. } => "LiveDetected",
            EventKind::StreamUpdated { .. } => "StreamUpdated",
            EventKind::StreamOffline { .. } => "StreamOffline",
            EventKind::LiveCheckFailed { .. } => "LiveCheckFailed",
            EventKind::LiveCheckRecovered => "LiveCheckRecovered",
            EventKind::LiveAdultOnly { .. } => "LiveAdultOnly",
            EventKind::EventSubDown { .. } => "EventSubDown",
            EventKind::EventSubUp => "EventSubUp",
            EventKind::EventSubRevoked { .. } => "EventSubRevoked",
            EventKind::EventSubLimitReached { .. } => "EventSubLimitReached",
            EventKind::RecordingStarted { .. } => "RecordingStarted",
            EventKind::RenditionWithheld { .. } => "RenditionWithheld",
            EventKind::RecordingGap { .. } => "RecordingGap",
            EventKind::AdBreak { .. } => "AdBreak",
            EventKind::RecordingStalled { .. } => "RecordingStalled",
            EventKind::RecordingPartFinished { .. } => "RecordingPartFinished",
            EventKind::RecordingFinished { .. } => "RecordingFinished",
            EventKind::RecordingFailed { .. } => "RecordingFailed",
            EventKind::GapFilled { .. } => "GapFilled",
            EventKind::VodFillFailed { .. } => "VodFillFailed",
            EventKind::VodFillDone { .. } => "VodFillDone",
            EventKind::DiskLow { .. } => "DiskLow",
            EventKind::ChatJoined { .. } => "ChatJoined",
            EventKind::ChatDisconnected { .. } => "ChatDisconnected",
            EventKind::ChatReconnected { .. } => "ChatReconnected",
            EventKind::ChatDropped { .. } => "ChatDropped",
            EventKind::ChatStreamBehind { .. } => "ChatStreamBehind",
            EventKind::ChatStreamDropped { .. } => "ChatStreamDropped",
            EventKind::ChatSaved { .. } => "ChatSaved",
            EventKind::ChatSaveFailed { .. } => "ChatSaveFailed",
            EventKind::ChatReplayFailed { .. } => "ChatReplayFailed",
            EventKind::ChatGaveUp { .. } => "ChatGaveUp",
            EventKind::ChatUnreadable { .. } => "ChatUnreadable",
            EventKind::ChatPaused { .. } => "ChatPaused",
            EventKind::AuthRequired { .. } => "AuthRequired",
            EventKind::AuthCompleted { .. } => "AuthCompleted",
            EventKind::UploadQueued { .. } => "UploadQueued",
            EventKind::UploadStarted { .. } => "UploadStarted",
            EventKind::UploadProgress { .. } => "UploadProgress",
            EventKind::UploadDeferred { .. } => "UploadDeferred",
            EventKind::UploadFinished { .. } => "UploadFinished",
            EventKind::UploadFailed { .. } => "UploadFailed",
            EventKind::UploadFilesKept { .. } => "UploadFilesKept",
            EventKind::SummaryReady { .. } => "SummaryReady",
            EventKind::SummaryFailed { .. } => "SummaryFailed",
            EventKind::PostStarted { .. } => "PostStarted",
            EventKind::PostProgress { .. } => "PostProgress",
            EventKind::PostFinished { .. } => "PostFinished",
            EventKind::PostFailed { .. } => "PostFailed",
            EventKind::WebhookRefused { .. } => "WebhookRefused",
            EventKind::EmailRefused { .. } => "EmailRefused",
            EventKind::DeliveryFailing { .. } => "DeliveryFailing",
        }
    }

    /// Audit entries are persisted but not posted: the person who acted already got a reply.
    pub fn is_audit_only(&self) -> bool {
        matches!(
            self,
            EventKind::WatchAdded { .. }
                | EventKind::WatchRemoved { .. }
                | EventKind::CommandRefused { .. }
                | EventKind::VodFillDone { .. }
        )
    }

    /// Service-wide events go to the front-ends' `events_room` even when they name a login.
    pub fn is_service_wide(&self) -> bool {
        matches!(
            self,
            EventKind::ServiceStarted { .. }
                | EventKind::ServiceStopping
                | EventKind::DiskLow { .. }
                | EventKind::LiveCheckFailed { .. }
                | EventKind::LiveCheckRecovered
                | EventKind::EventSubDown { .. }
                | EventKind::EventSubUp
                | EventKind::EventSubRevoked { .. }
                | EventKind::EventSubLimitReached { .. }
                | EventKind::AuthRequired { .. }
                | EventKind::AuthCompleted { .. }
                | EventKind::WebhookRefused { .. }
                | EventKind::EmailRefused { .. }
                | EventKind::DeliveryFailing { .. }
                | EventKind::ChatStreamBehind { .. }
                | EventKind::ChatStreamDropped { .. }
                | EventKind::PostFailed { job: None, .. }
        )
    }
}

/// Where a command came from and where its login's events go.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Room {
    Console,
    /// A Slack channel id.
    Slack(String),
    /// A Discord channel id.
    Discord(String),
    /// An HTTP API client, by its token's name (`[[http.tokens]]`); its logins' events go to
    /// the chat front-ends' `events_room`.
    Http(String),
}

impl Room {
    pub fn frontend(&self) -> &'static str {
        match self {
            Room::Console => "console",
            Room::Slack(_) => "slack",
            Room::Discord(_) => "discord",
            Room::Http(_) => "http",
        }
    }
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Room::Console => f.write_str("console"),
            Room::Slack(id) => write!(f, "slack:{id}"),
            Room::Discord(id) => write!(f, "discord:{id}"),
            Room::Http(name) => write!(f, "http:{name}"),
        }
    }
}

impl FromStr for Room {
    type Err = String;

    fn from_str(s: &str) -> Result<Room, String> {
        let valid_id = |id: &str| {
            !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric())
        };
        match s.split_once(':') {
            None if s == "console" => Ok(Room::Console),
            Some(("slack", id)) if valid_id(id) => Ok(Room::Slack(id.to_string())),
            Some(("discord", id)) if valid_id(id) => Ok(Room::Discord(id.to_string())),
            Some(("http", name)) if crate::config::Http::valid_token_name(name) => {
                Ok(Room::Http(name.to_string()))
            }
            _ => Err(format!("`{s}` is not a room")),
        }
    }
}

impl From<Room> for String {
    fn from(room: Room) -> String {
        room.to_string()
    }
}

impl TryFrom<String> for Room {
    type Error = String;

    fn try_from(s: String) -> Result<Room, String> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_round_trip() {
        for room in [
            Room::Console,
            Room::Slack("C0123".into()),
            Room::Discord("123456789".into()),
            Room::Http("ci-bot_2".into()),
        ] {
            assert_eq!(room.to_string().parse::<Room>().unwrap(), room);
        }
        assert!("slack:".parse::<Room>().is_err());
        assert!("irc:x".parse::<Room>().is_err());
        assert!("slack:../x".parse::<Room>().is_err());
        assert!("http:".parse::<Room>().is_err());
        assert!("http:a b".parse::<Room>().is_err());
    }

    #[test]
    fn stable_names_are_listed_once() {
        let mut names = EventKind::NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventKind::NAMES.len());
        // A kind's serialized `type` is its stable name, and the name is in the list.
        let kind = EventKind::WebhookRefused {
            webhook: "ops".into(),
            delivery: 7,
            event: "RecordingFailed".into(),
            status: 404,
        };
        let json = serde_json::to_value(&kind).unwrap();
        assert_eq!(json["type"], kind.name());
        assert!(EventKind::NAMES.contains(&kind.name()));
        assert!(EventKind::NAMES.contains(&EventKind::ServiceStopping.name()));
    }

    /// Every name `name()` gives is listed in `NAMES` (which config checks `events` filters
    /// against): read from this file's own `name()` arms, so a new kind cannot be forgotten.
    #[test]
    fn every_kind_is_in_the_list_of_names() {
        let source = include_str!("event.rs");
        let start = source.find("pub fn name(&self)").expect("name()");
        let body = &source[start..start + source[start..].find("\n    }\n").unwrap()];
        let named: Vec<&str> = body
            .split("=> \"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert!(named.len() > 40, "{named:?}");
        for name in named {
            assert!(
                EventKind::NAMES.contains(&name),
                "{name} is not in EventKind::NAMES"
            );
        }
    }

    #[test]
    fn events_serialize_with_their_type() {
        let e = Event::now(
            Some(Login::parse("foo").unwrap()),
            EventKind::WatchRemoved {
                by: "console".into(),
                room: Room::Console,
            },
        );
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""type":"WatchRemoved""#), "{json}");
        assert!(json.contains(r#""room":"console""#), "{json}");
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }
}
