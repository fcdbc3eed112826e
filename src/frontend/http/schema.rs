//! The shapes of the API's JSON bodies, for the OpenAPI document only: the bodies themselves
//! are built from the core's typed data in `json.rs`, `recordings.rs` and `probes.rs`, and
//! `tests/http_api.rs` checks that the bodies really served have what these shapes require.
//! Properties that only operators see are optional here and say so.

// Never built: these types exist for their `ToSchema` derive.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use serde_json::Value;
use utoipa::ToSchema;

/// An RFC 9457 problem (`application/problem+json`); `detail` has chat's words.
#[derive(ToSchema)]
pub struct Problem {
    /// `urn:recbot:problem:<kind>`, e.g. `urn:recbot:problem:not-watched`.
    #[schema(example = "urn:recbot:problem:not-watched")]
    r#type: String,
    /// The status's reason phrase.
    title: String,
    status: u16,
    detail: String,
}

/// `POST /logins`: either `login`, or `hls_url` and `name`.
#[derive(ToSchema)]
pub struct AddLogin {
    /// A Twitch login to watch.
    login: Option<String>,
    /// An HLS playlist address to record instead of a Twitch login (with `name`).
    hls_url: Option<String>,
    /// The name an `hls_url` source is recorded and shown as.
    name: Option<String>,
    /// One word, e.g. `best`, `720p60`.
    quality: Option<String>,
    /// Upload finished parts to YouTube.
    upload: Option<bool>,
    /// Log the login's chat.
    chat: Option<bool>,
    /// Post-processing of each finished part: `none`, `remux` or `transcode` (default
    /// `[postprocess] mode`).
    post: Option<String>,
}

/// `POST /auth/{service}/code`.
#[derive(ToSchema)]
pub struct Code {
    /// The code, the whole address the consent page redirected to, or (for `twitch-viewer`)
    /// a token.
    code: String,
}

/// A watched login.
#[derive(ToSchema)]
pub struct Watch {
    login: String,
    quality: String,
    upload: bool,
    chat: bool,
    /// The login's own post-processing (`none`, `remux`, `transcode`); absent: `[postprocess]
    /// mode`.
    post: Option<String>,
    added_at: DateTime<Utc>,
    /// `twitch`, `hls`, `chzzk` or `bilibili`.
    #[schema(example = "twitch")]
    source: String,
    /// The channel's display name, as its platform gave it when it was added (Chzzk).
    display_name: Option<String>,
    /// The playlist address of an `hls` source (operators only).
    hls_url: Option<String>,
    /// Who added it (operators only).
    added_by: Option<String>,
    /// The chat room its events are posted to (operators only).
    room: Option<String>,
}

/// `GET /logins`.
#[derive(ToSchema)]
pub struct Logins {
    logins: Vec<Watch>,
}

/// `POST /logins`: `added` (201) or `updated` options, or neither (already watched so).
#[derive(ToSchema)]
pub struct Added {
    added: bool,
    updated: bool,
    /// Uploads are off in the config, so `upload` has no effect (absent when already watched).
    uploads_disabled: Option<bool>,
    login: Watch,
}

/// `DELETE /logins/{login}`.
#[derive(ToSchema)]
pub struct Removed {
    removed: String,
}

/// `GET /logins/{login}`: one login's state.
#[derive(ToSchema)]
pub struct LoginStatus {
    login: Watch,
    /// The live state (`state`: `unknown`, `not_live` or `live`, with its details: `title`,
    /// `game`, `started_at`, `viewers` at the last check and `peak_viewers` of the session
    /// being recorded); null for an HLS source.
    #[schema(value_type = Option<Object>)]
    live: Option<Value>,
    /// The recording running now (file, part, bytes, duration, bitrate), or null.
    #[schema(value_type = Option<Object>)]
    recording: Option<Value>,
    /// Seconds until the next live check of a channel polled on a schedule (Chzzk), or null.
    next_check_secs: Option<u64>,
    /// The latest events, newest last.
    recent: Vec<Event>,
    /// The status as chat shows it.
    text: String,
}

/// `GET /status`: the service.
#[derive(ToSchema)]
pub struct ServiceStatus {
    version: String,
    up_secs: u64,
    /// Logins watched.
    watching: u64,
    /// Of which HLS sources.
    hls: u64,
    /// Recordings running.
    recording: u64,
    /// The chat front-ends configured.
    frontends: Vec<String>,
    /// The state database's schema version.
    schema: i64,
    /// The live watcher (`mode`, `interval_secs`, `live`, `watched`, `last_check`,
    /// `last_error`, `eventsub`), or null.
    #[schema(value_type = Option<Object>)]
    live_detection: Option<Value>,
    /// The Twitch viewer login playback tokens are asked as (null: logged out).
    viewer: Option<String>,
    /// The status as chat shows it.
    text: String,
}

/// An upload job.
#[derive(ToSchema)]
pub struct Upload {
    id: u64,
    login: Option<String>,
    session: Option<i64>,
    file: String,
    /// e.g. `queued`, `uploading`, `waiting`, `done`, `failed`.
    state: String,
    sent_bytes: u64,
    total_bytes: u64,
    attempts: u32,
    next_attempt_at: Option<DateTime<Utc>>,
    wait_reason: Option<String>,
    /// The YouTube video (operators only).
    video_id: Option<String>,
    /// The video's address (operators only).
    url: Option<String>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// `GET /uploads`.
#[derive(ToSchema)]
pub struct Uploads {
    /// `[youtube] enabled`.
    enabled: bool,
    /// The open and latest jobs.
    uploads: Vec<Upload>,
}

/// `POST /uploads/{id}/retry`.
#[derive(ToSchema)]
pub struct Requeued {
    requeued: u64,
    enabled: bool,
}

/// `GET /quota`: YouTube's API quota of the Pacific day.
#[derive(ToSchema)]
pub struct Quota {
    day: chrono::NaiveDate,
    used: u32,
    left: u32,
    limit: u32,
    next_reset: DateTime<Utc>,
    /// New uploads wait until then (the channel reached YouTube's upload limit).
    held_until: Option<DateTime<Utc>>,
    enabled: bool,
}

/// `GET /disk`.
#[derive(ToSchema)]
pub struct Disk {
    used_percent: f64,
    free_bytes: u64,
    total_bytes: u64,
    /// `{"level": "fine"}`, `{"level": "warn", "percent": …}` or
    /// `{"level": "stop", "min_free_gb": …}`.
    #[schema(value_type = Object)]
    level: Value,
    recordings_bytes: u64,
    /// Operators only.
    recordings_dir: Option<String>,
    chat_bytes: u64,
    /// Operators only.
    chat_dir: Option<String>,
    /// Recordings running.
    running: u64,
    /// How old the (cached) measurement is.
    age_secs: u64,
}

/// `POST /auth/{service}`: where the operator goes next, by `flow`: `youtube` (`url`,
/// `minutes`), `twitch` (`url`, `redirect_uri`, `minutes`) or `twitch_device`
/// (`verification_uri`, `user_code`, `expires_at`). Shown in this response only.
#[derive(ToSchema)]
pub struct AuthLink {
    #[schema(example = "youtube")]
    flow: String,
    url: Option<String>,
    redirect_uri: Option<String>,
    /// How long the link stays valid.
    minutes: Option<f64>,
    verification_uri: Option<String>,
    user_code: Option<String>,
    expires_at: Option<DateTime<Utc>>,
}

/// `POST /auth/{service}/code`: the service connected.
#[derive(ToSchema)]
pub struct Connected {
    /// `{"service": "youtube"}`, `{"service": "twitch", "login", "unmatched"}` or
    /// `{"service": "twitch_viewer", "login"}`.
    #[schema(value_type = Object)]
    connected: Value,
}

/// A recorded session with its parts.
#[derive(ToSchema)]
pub struct Recording {
    id: i64,
    login: String,
    stream_id: Option<String>,
    title: Option<String>,
    game: Option<String>,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    /// Sums over the finished parts.
    totals: Totals,
    parts: Vec<Part>,
}

/// Sums over a session's finished parts.
#[derive(ToSchema)]
pub struct Totals {
    parts: u32,
    bytes: u64,
    duration_secs: f64,
    gaps: u32,
}

/// One file of a session.
#[derive(ToSchema)]
pub struct Part {
    part: i64,
    file: Option<String>,
    /// e.g. `recording`, `finished`.
    state: String,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    bytes: u64,
    duration_secs: f64,
    gaps: u32,
    recovered: bool,
    /// The file's path (operators only).
    path: Option<String>,
}

/// `GET /recordings`.
#[derive(ToSchema)]
pub struct Recordings {
    /// Newest first.
    recordings: Vec<Recording>,
}

/// An event as the event stream sends it: these fields, then the kind's own (see the
/// README's event table). Heartbeats on the WebSocket are `{"type": "heartbeat", "at"}`.
#[derive(ToSchema)]
pub struct Event {
    /// The event-log id (absent in a login's `recent` list).
    id: Option<i64>,
    /// The stable event name, e.g. `SessionStarted`.
    #[schema(example = "SessionStarted")]
    r#type: String,
    login: Option<String>,
    session: Option<i64>,
    at: DateTime<Utc>,
}

/// `GET /readyz`.
#[derive(ToSchema)]
pub struct Ready {
    ready: bool,
    /// Why not (empty when ready).
    reasons: Vec<String>,
}
