//! The typed configuration: loading the TOML file, environment overrides
//! (`RECBOT_<SECTION>__<KEY>`), validation with messages that name the file, line and key,
//! and path resolution. Credentials are [`Secret`]s.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use recbot_commands::Quality;
use serde::{Deserialize, Deserializer};

use crate::secret::Secret;

/// Prefix of environment overrides: `RECBOT_TWITCH__CLIENT_SECRET` sets `[twitch] client_secret`.
pub const ENV_PREFIX: &str = "RECBOT_";

/// Accepts a string, or a number/bool written without quotes (IDs such as a Discord guild id
/// are numbers to most people, and environment values carry no type).
pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Any {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }
    Ok(match Any::deserialize(d)? {
        Any::S(s) => s,
        Any::I(i) => i.to_string(),
        Any::F(f) => f.to_string(),
        Any::B(b) => b.to_string(),
    })
}

fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    lenient_string(d).map(Some)
}

fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "lenient_string")] String);
    Ok(Vec::<Wrap>::deserialize(d)?
        .into_iter()
        .map(|w| w.0)
        .collect())
}

fn quality<'de, D: Deserializer<'de>>(d: D) -> Result<Quality, D::Error> {
    let s = String::deserialize(d)?;
    Quality::parse(&s).map_err(serde::de::Error::custom)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub storage: Storage,
    pub console: Console,
    pub twitch: Twitch,
    pub recording: Recording,
    pub chat: Chat,
    pub youtube: Youtube,
    pub slack: Slack,
    pub discord: Discord,
    /// Where the file was read from; relative paths were resolved against its folder.
    #[serde(skip)]
    pub source: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            storage: Storage::default(),
            console: Console::default(),
            twitch: Twitch::default(),
            recording: Recording::default(),
            chat: Chat::default(),
            youtube: Youtube::default(),
            slack: Slack::default(),
            discord: Discord::default(),
            source: PathBuf::from("recbot.toml"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// State database, and by default recordings/ and chat/, live here.
    pub data_dir: PathBuf,
    /// Default: `<data_dir>/recordings`.
    pub recordings_dir: Option<PathBuf>,
    /// Default: `<data_dir>/chat`.
    pub chat_dir: Option<PathBuf>,
    /// A `DiskLow` event is posted when the recordings disk is fuller than this.
    pub warn_usage_percent: u8,
    /// Recording stops cleanly (parts finalized) below this much free space.
    pub min_free_gb: f64,
    /// Seconds between two free-space checks of the recordings disk.
    pub disk_check_secs: u64,
    /// Seconds a `disk` answer (a walk of the recordings and chat folders) is reused; 0 walks
    /// for every `disk` (still one walk at a time, shared by the requests waiting for it).
    pub disk_report_secs: u64,
    /// A recording also checks free space after writing this many MB (0: after every
    /// segment), so a fast stream cannot fill the disk between two timer checks.
    pub disk_check_mb: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            data_dir: PathBuf::from("data"),
            recordings_dir: None,
            chat_dir: None,
            warn_usage_percent: 85,
            min_free_gb: 2.0,
            disk_check_secs: 60,
            disk_report_secs: 60,
            disk_check_mb: 256,
        }
    }
}

impl Storage {
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("recbot.sqlite")
    }

    pub fn recordings_dir(&self) -> PathBuf {
        self.recordings_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("recordings"))
    }

    pub fn chat_dir(&self) -> PathBuf {
        self.chat_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("chat"))
    }
}

impl Config {
    /// Where `after_upload = "move"` puts uploaded recordings.
    pub fn uploaded_dir(&self) -> PathBuf {
        self.youtube
            .uploaded_dir
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join("uploaded"))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Console {
    /// Default: on when neither Slack nor Discord is configured.
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Twitch {
    #[serde(deserialize_with = "lenient_opt_string")]
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// Default: 10 s with Helix credentials, 30 s when probing playlists.
    pub poll_interval_secs: Option<u64>,
    pub helix_url: String,
    pub id_url: String,
    pub gql_url: String,
    #[serde(deserialize_with = "lenient_string")]
    pub gql_client_id: String,
    /// sha256 of the `PlaybackAccessToken` persisted query; Twitch changes it now and then.
    pub gql_query_hash: String,
    pub usher_url: String,
    pub irc_host: String,
    pub irc_port: u16,
    pub irc_tls: bool,
    /// Where Twitch sends the browser after consent; must be registered with the app.
    pub redirect_uri: String,
    /// A stream that comes back within this many seconds continues the same session.
    pub offline_grace_secs: u64,
    /// Scopes asked for the user token (`auth twitch`).
    #[serde(deserialize_with = "lenient_strings")]
    pub scopes: Vec<String>,
    /// How long a started `auth twitch` waits for its `code twitch`.
    pub pending_auth_minutes: f64,
    /// Seconds between validations of the user token (Twitch requires at least hourly).
    pub validate_interval_secs: u64,
}

impl Default for Twitch {
    fn default() -> Self {
        Twitch {
            client_id: None,
            client_secret: None,
            poll_interval_secs: None,
            helix_url: "https://api.twitch.tv/helix".into(),
            id_url: "https://id.twitch.tv/oauth2".into(),
            gql_url: "https://gql.twitch.tv/gql".into(),
            gql_client_id: "kimne78kx3ncx6brgo4mv6wki5h1ko".into(),
            gql_query_hash: "ed230aa1e33e07eebb8928504583da78a5173989fadfb1ac94be06a04f3cdbe9"
                .into(),
            usher_url: "https://usher.ttvnw.net".into(),
            irc_host: "irc.chat.twitch.tv".into(),
            irc_port: 6697,
            irc_tls: true,
            redirect_uri: "http://localhost:3000".into(),
            offline_grace_secs: 90,
            scopes: vec!["chat:read".into()],
            pending_auth_minutes: 10.0,
            validate_interval_secs: 3600,
        }
    }
}

impl Twitch {
    /// Helix needs an app token, which needs both halves of the app's credentials.
    pub fn has_app_credentials(&self) -> bool {
        self.client_id.as_deref().is_some_and(|s| !s.is_empty())
            && self
                .client_secret
                .as_ref()
                .is_some_and(|s| !s.expose().is_empty())
    }

    pub fn poll_interval_secs(&self) -> u64 {
        self.poll_interval_secs
            .unwrap_or(if self.has_app_credentials() { 10 } else { 30 })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recording {
    #[serde(deserialize_with = "quality")]
    pub quality: Quality,
    /// Relative to recordings_dir; `{login}`, `{started:<strftime>}` (UTC), `{title}`, …
    pub file_template: String,
    /// Roll to a new part after this long (YouTube accepts at most 12 h).
    pub max_part_hours: f64,
    /// No new segment for max(this, 3 × target duration) → new token and playlist; still
    /// nothing after as long again → `RecordingStalled`.
    pub stall_timeout_secs: u64,
    /// The part's data and its progress checkpoint are fsynced at least this often (data
    /// first): a power cut loses at most this much of a recording.
    pub sync_interval_secs: u64,
    /// `add hls` sources (and every address their playlists and redirects lead to) may be
    /// on loopback, private, link-local and other non-public addresses.
    pub allow_private_sources: bool,
    /// Non-public places `add hls` sources may still be read from: `host`, `host:port`,
    /// IP addresses (with or without a port) and networks (`10.0.0.0/8`).
    pub allowed_sources: Vec<crate::allowed_source::AllowedSource>,
    /// A segment may hold at most 2 × its duration (or the target duration, if longer) at
    /// this bitrate (Mbit/s); a longer body is aborted and reported as a gap.
    pub max_segment_mbps: f64,
    /// And never more than this many MiB, whatever its duration.
    pub max_segment_mb: u64,
    /// A segment download may take at most this many times the target duration …
    pub segment_time_factor: f64,
    /// … but never less than this many seconds.
    pub segment_min_secs: f64,
    /// Gaps reported within this many seconds of the last gap notice are folded into one
    /// notice (the sidecar still lists each gap).
    pub gap_notice_secs: u64,
}

impl Default for Recording {
    fn default() -> Self {
        Recording {
            quality: Quality::BEST,
            file_template: "{login}/{started:%Y-%m-%d_%H-%M-%S}_{title}.ts".into(),
            max_part_hours: 11.5,
            stall_timeout_secs: 30,
            sync_interval_secs: 30,
            allow_private_sources: false,
            allowed_sources: Vec::new(),
            max_segment_mbps: 100.0,
            max_segment_mb: 256,
            segment_time_factor: 4.0,
            segment_min_secs: 20.0,
            gap_notice_secs: 60,
        }
    }
}

/// How recbot logs in to Twitch chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatLogin {
    /// Read-only as `justinfan<digits>`: no token, not counted against a user's limits.
    Anonymous,
    /// As the Twitch account connected with `auth twitch` (anonymous until there is one).
    User,
}

impl ChatLogin {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatLogin::Anonymous => "anonymous",
            ChatLogin::User => "user",
        }
    }
}

/// The chat logger (`src/chat/`): connections, Twitch's limits, and the log writer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Chat {
    /// Log the chat of watched Twitch logins (those added with `chat=on`).
    pub enabled: bool,
    pub login: ChatLogin,
    /// Rooms per IRC connection.
    pub channels_per_connection: usize,
    /// At most one new connection per this many seconds.
    pub connect_interval_secs: f64,
    /// At most `join_limit` JOINs per `join_window_secs` for the whole account.
    pub join_limit: usize,
    pub join_window_secs: f64,
    /// recbot PINGs every connection this often and reconnects when no PONG comes within
    /// `ping_timeout_secs` (also the time the server has to answer the login).
    pub ping_interval_secs: f64,
    pub ping_timeout_secs: f64,
    /// Every joined room is JOINed again this often (Twitch sometimes drops a membership).
    pub rejoin_interval_secs: f64,
    /// Reconnect delays: exponential from `backoff_initial_secs`, full jitter, capped.
    pub backoff_initial_secs: f64,
    pub backoff_max_secs: f64,
    /// Log lines reach the files at least this often, and the disk (fsync) this often.
    pub flush_interval_secs: f64,
    pub fsync_interval_secs: f64,
    /// Lines waiting for the writer; beyond it lines are counted and reported, not kept.
    pub queue_lines: usize,
    /// Day files kept open at once (the least recently used are closed first); 0: one per
    /// logged room, within the process's open-file limit.
    pub max_open_files: usize,
    /// How long a finished part's upload waits for its chat file before it goes without it.
    pub save_timeout_secs: f64,
}

impl Default for Chat {
    fn default() -> Self {
        Chat {
            enabled: true,
            login: ChatLogin::Anonymous,
            channels_per_connection: 90,
            connect_interval_secs: 2.0,
            join_limit: 20,
            join_window_secs: 10.0,
            ping_interval_secs: 60.0,
            ping_timeout_secs: 10.0,
            rejoin_interval_secs: 3600.0,
            backoff_initial_secs: 1.0,
            backoff_max_secs: 60.0,
            flush_interval_secs: 1.0,
            fsync_interval_secs: 10.0,
            queue_lines: 10_000,
            max_open_files: 0,
            save_timeout_secs: 300.0,
        }
    }
}

impl Chat {
    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, msg: &str| Err((format!("chat.{key}"), msg.to_string()));
        if !(1..=1000).contains(&self.channels_per_connection) {
            return fail("channels_per_connection", "must be between 1 and 1000");
        }
        if self.join_limit == 0 {
            return fail("join_limit", "must be at least 1");
        }
        for (key, value) in [
            ("connect_interval_secs", self.connect_interval_secs),
            ("join_window_secs", self.join_window_secs),
            ("ping_interval_secs", self.ping_interval_secs),
            ("ping_timeout_secs", self.ping_timeout_secs),
            ("rejoin_interval_secs", self.rejoin_interval_secs),
            ("backoff_initial_secs", self.backoff_initial_secs),
            ("backoff_max_secs", self.backoff_max_secs),
            ("flush_interval_secs", self.flush_interval_secs),
            ("fsync_interval_secs", self.fsync_interval_secs),
            ("save_timeout_secs", self.save_timeout_secs),
        ] {
            if !(value.is_finite() && value > 0.0 && value <= 86_400.0) {
                return fail(key, "must be a number of seconds above 0 (at most one day)");
            }
        }
        if self.backoff_max_secs < self.backoff_initial_secs {
            return fail("backoff_max_secs", "must not be below backoff_initial_secs");
        }
        if self.flush_interval_secs > 1.0 {
            return fail(
                "flush_interval_secs",
                "must be at most 1 second (a crash may lose at most the last second)",
            );
        }
        if self.fsync_interval_secs < self.flush_interval_secs {
            return fail(
                "fsync_interval_secs",
                "must not be below flush_interval_secs",
            );
        }
        if self.queue_lines < 100 {
            return fail("queue_lines", "must be at least 100");
        }
        if (1..4).contains(&self.max_open_files) {
            return fail(
                "max_open_files",
                "must be 0 (one per room, the default) or at least 4",
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privacy {
    Private,
    Unlisted,
    Public,
}

impl Privacy {
    pub fn as_str(self) -> &'static str {
        match self {
            Privacy::Private => "private",
            Privacy::Unlisted => "unlisted",
            Privacy::Public => "public",
        }
    }
}

/// What happens to a recording once YouTube confirmed its upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterUpload {
    Keep,
    Move,
    Delete,
}

impl AfterUpload {
    pub fn as_str(self) -> &'static str {
        match self {
            AfterUpload::Keep => "keep",
            AfterUpload::Move => "move",
            AfterUpload::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Youtube {
    pub enabled: bool,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// A loopback address registered with the Google "Desktop app" client. The browser fails
    /// to load it after consent; the operator pastes that address back with `code youtube`.
    pub redirect_uri: String,
    pub auth_url: String,
    pub token_url: String,
    pub upload_url: String,
    /// YouTube Data API base (`videos.list` before `after_upload = "delete"`).
    pub api_url: String,
    pub privacy: Privacy,
    pub title_template: String,
    /// Uploads per Pacific day before recbot waits for the reset (YouTube's own bucket is 100).
    pub daily_upload_limit: u32,
    /// `keep` the file, `move` it (and its sidecar) to `uploaded_dir`, or `delete` both, once
    /// YouTube confirmed the upload.
    pub after_upload: AfterUpload,
    /// Default: `<data_dir>/uploaded`.
    pub uploaded_dir: Option<PathBuf>,
    /// Bytes per upload request, in MiB (a multiple of Google's 256 KiB unit).
    pub chunk_size_mib: u32,
    /// Longest one chunk request may take before it counts as a timeout.
    pub chunk_timeout_secs: u64,
    /// How long to wait after YouTube's per-channel `uploadLimitExceeded`.
    pub upload_limit_wait_hours: u64,
    /// Network errors, timeouts and 5xx answers in a row before the job waits
    /// `retry_wait_minutes`.
    pub retry_limit: u32,
    /// First backoff after an error; it doubles each time (with random jitter).
    pub retry_initial_ms: u64,
    /// Longest backoff between two tries.
    pub retry_max_secs: u64,
    /// How long a job waits after `retry_limit` errors in a row.
    pub retry_wait_minutes: u64,
    /// Such waits before the job is marked failed (the file is kept; `retry` re-queues it).
    pub max_attempts: u32,
    /// How long a started `auth youtube` waits for its `code youtube`.
    pub pending_auth_minutes: f64,
    /// With `after_upload = "delete"`: first wait before asking YouTube whether the video is
    /// processed; it doubles (with jitter) up to an hour between checks.
    pub processing_check_secs: f64,
    /// With `after_upload = "delete"`: a video still not processed after this long keeps its
    /// files (and says so).
    pub processing_timeout_hours: f64,
}

impl Default for Youtube {
    fn default() -> Self {
        Youtube {
            enabled: false,
            client_id: None,
            client_secret: None,
            redirect_uri: "http://127.0.0.1:8085/".into(),
            auth_url: "https://accounts.google.com/o/oauth2/auth".into(),
            token_url: "https://oauth2.googleapis.com/token".into(),
            upload_url: "https://www.googleapis.com/upload/youtube/v3/videos".into(),
            api_url: "https://www.googleapis.com/youtube/v3".into(),
            privacy: Privacy::Private,
            title_template: "{display_name} {started:%Y-%m-%d %H:%M} {title}".into(),
            daily_upload_limit: 100,
            after_upload: AfterUpload::Keep,
            uploaded_dir: None,
            chunk_size_mib: 16,
            chunk_timeout_secs: 600,
            upload_limit_wait_hours: 24,
            retry_limit: 10,
            retry_initial_ms: 1000,
            retry_max_secs: 60,
            retry_wait_minutes: 30,
            max_attempts: 10,
            pending_auth_minutes: 10.0,
            processing_check_secs: 60.0,
            processing_timeout_hours: 24.0,
        }
    }
}

impl Youtube {
    pub fn chunk_bytes(&self) -> u64 {
        u64::from(self.chunk_size_mib) * 1024 * 1024
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Slack {
    /// `xapp-…` with `connections:write`, for Socket Mode.
    pub app_token: Option<Secret>,
    /// `xoxb-…`, for posting.
    pub bot_token: Option<Secret>,
    /// For the optional HTTP mode (`listen`).
    pub signing_secret: Option<Secret>,
    /// HTTP mode instead of Socket Mode: address to listen on for slash commands and events.
    pub listen: Option<SocketAddr>,
    pub api_url: String,
    pub command: String,
    #[serde(deserialize_with = "lenient_strings")]
    pub operators: Vec<String>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub events_room: Option<String>,
}

impl Default for Slack {
    fn default() -> Self {
        Slack {
            app_token: None,
            bot_token: None,
            signing_secret: None,
            listen: None,
            api_url: "https://slack.com/api".into(),
            command: "/rec".into(),
            operators: Vec::new(),
            events_room: None,
        }
    }
}

impl Slack {
    pub fn is_configured(&self) -> bool {
        self.bot_token.is_some()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Discord {
    pub token: Option<Secret>,
    pub api_url: String,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub guild_id: Option<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub operators: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub operator_roles: Vec<String>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub events_room: Option<String>,
}

impl Default for Discord {
    fn default() -> Self {
        Discord {
            token: None,
            api_url: "https://discord.com".into(),
            guild_id: None,
            operators: Vec::new(),
            operator_roles: Vec::new(),
            events_room: None,
        }
    }
}

impl Discord {
    pub fn is_configured(&self) -> bool {
        self.token.is_some()
    }
}

impl Config {
    pub fn console_enabled(&self) -> bool {
        self.console
            .enabled
            .unwrap_or(!self.slack.is_configured() && !self.discord.is_configured())
    }

    /// Reads, overrides from the process environment, validates and resolves `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__"))
            .collect();
        Self::load_with_env(path, &env)
    }

    /// [`Config::load`] with an explicit environment, for tests.
    pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read the config file: {e}"),
        })?;
        Self::from_text(&text, path, env)
    }

    /// Parses `text` as if read from `path` (used for relative paths and messages).
    pub fn from_text(
        text: &str,
        path: &Path,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let error = |line, key: Option<String>, message: String| ConfigError {
            file: path.to_path_buf(),
            line,
            key,
            message,
        };
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map(|s| line_of(text, s.start));
            error(line, None, e.message().to_string())
        })?;
        let overrides =
            apply_env(&mut table, env).map_err(|(var, msg)| error(None, Some(var), msg))?;
        let mut config: Config = match deserialize(&table) {
            Ok(config) => config,
            Err((key, message)) => {
                // `recording.allowed_sources[1]` came from the variable that set the list.
                let whole = key.split('[').next().unwrap_or(&key);
                if let Some(var) = overrides.get(whole) {
                    return Err(error(
                        None,
                        Some(key),
                        format!("{message} (from environment variable {var})"),
                    ));
                }
                // Deserialize the file text itself for the position of the error.
                let line = file_error_line(text).or_else(|| locate(text, &key));
                return Err(error(line, Some(key), message));
            }
        };
        config.source = path.to_path_buf();
        let folder = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(folder);
        if let Err((key, message)) = config.validate() {
            let line = if overrides.contains_key(&key) {
                None
            } else {
                locate(text, &key)
            };
            let message = match overrides.get(&key) {
                Some(var) => format!("{message} (from environment variable {var})"),
                None => message,
            };
            return Err(error(line, Some(key), message));
        }
        Ok(config)
    }

    /// What `check-config` prints: front-ends, features, and where data goes. No secrets.
    pub fn summary(&self) -> String {
        let on = |b: bool| if b { "on" } else { "off" };
        let mut frontends = Vec::new();
        if self.console_enabled() {
            frontends.push("console".to_string());
        }
        if self.slack.is_configured() {
            let mode = match self.slack.listen {
                Some(addr) => format!("HTTP mode on {addr}"),
                None => "Socket Mode".into(),
            };
            frontends.push(format!(
                "slack ({mode}, command {}, {} operators)",
                self.slack.command,
                self.slack.operators.len()
            ));
        }
        if self.discord.is_configured() {
            let scope = match &self.discord.guild_id {
                Some(g) => format!("guild {g}"),
                None => "global command".into(),
            };
            frontends.push(format!(
                "discord ({scope}, {} operators, {} operator roles)",
                self.discord.operators.len(),
                self.discord.operator_roles.len()
            ));
        }
        if frontends.is_empty() {
            frontends.push("none (nothing can send commands!)".into());
        }
        let detection = if self.twitch.has_app_credentials() {
            format!(
                "Helix with app credentials, every {} s (100 logins per request)",
                self.twitch.poll_interval_secs()
            )
        } else {
            format!(
                "playlist probing without credentials, every {} s per login",
                self.twitch.poll_interval_secs()
            )
        };
        let uploads = if self.youtube.enabled {
            format!(
                "on (privacy {}, at most {} per day, {} MiB chunks, then {} the file)",
                self.youtube.privacy.as_str(),
                self.youtube.daily_upload_limit,
                self.youtube.chunk_size_mib,
                self.youtube.after_upload.as_str()
            ) + if self.youtube.after_upload == AfterUpload::Delete {
                " once YouTube has processed it"
            } else {
                ""
            }
        } else {
            "off".into()
        };
        let chat = if self.chat.enabled {
            format!(
                "{}:{} (TLS {}), login {}, {} rooms per connection, at most {} JOINs per {} s",
                self.twitch.irc_host,
                self.twitch.irc_port,
                on(self.twitch.irc_tls),
                self.chat.login.as_str(),
                self.chat.channels_per_connection,
                self.chat.join_limit,
                self.chat.join_window_secs
            )
        } else {
            "off".into()
        };
        let hls_sources = if self.recording.allow_private_sources {
            "any address (allow_private_sources = true)".to_string()
        } else if self.recording.allowed_sources.is_empty() {
            "public addresses only".to_string()
        } else {
            format!(
                "public addresses, and {}",
                self.recording
                    .allowed_sources
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        format!(
            "{} is valid.\n\
             front-ends:      {}\n\
             live detection:  {detection}\n\
             recording:       quality {}, parts of at most {} h, names {}\n\
             segments:        at most {} MiB and {} Mbit/s each, {} x the target duration (at least {} s); \
             fsync every {} s; gap notices at most every {} s\n\
             hls sources:     {hls_sources}\n\
             chat (IRC):      {chat}\n\
             youtube uploads: {uploads}\n\
             state database:  {}\n\
             recordings:      {}\n\
             chat logs:       {}\n\
             disk warnings:   above {}% used, recording stops below {} GB free\n",
            self.source.display(),
            frontends.join("; "),
            self.recording.quality,
            self.recording.max_part_hours,
            self.recording.file_template,
            self.recording.max_segment_mb,
            self.recording.max_segment_mbps,
            self.recording.segment_time_factor,
            self.recording.segment_min_secs,
            self.recording.sync_interval_secs,
            self.recording.gap_notice_secs,
            self.storage.database_path().display(),
            self.storage.recordings_dir().display(),
            self.storage.chat_dir().display(),
            self.storage.warn_usage_percent,
            self.storage.min_free_gb,
        )
    }

    fn resolve_paths(&mut self, folder: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = folder.join(&*p);
            }
        };
        resolve(&mut self.storage.data_dir);
        if let Some(p) = self.storage.recordings_dir.as_mut() {
            resolve(p);
        }
        if let Some(p) = self.storage.chat_dir.as_mut() {
            resolve(p);
        }
        if let Some(p) = self.youtube.uploaded_dir.as_mut() {
            resolve(p);
        }
    }

    /// Checks what types alone cannot. Errors name the key as `section.key`.
    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, msg: &str| Err((key.to_string(), msg.to_string()));
        let s = &self.storage;
        if !(1..=100).contains(&s.warn_usage_percent) {
            return fail(
                "storage.warn_usage_percent",
                "must be a percentage between 1 and 100",
            );
        }
        if !(s.min_free_gb.is_finite() && s.min_free_gb >= 0.0) {
            return fail("storage.min_free_gb", "must be zero or more gigabytes");
        }
        if self
            .youtube
            .redirect_uri
            .contains("urn:ietf:wg:oauth:2.0:oob")
        {
            return fail(
                "youtube.redirect_uri",
                "Google blocked the out-of-band (OOB) flow in 2023; use a loopback address \
                 such as http://127.0.0.1:8085/",
            );
        }
        let t = &self.twitch;
        if t.poll_interval_secs == Some(0) {
            return fail("twitch.poll_interval_secs", "must be at least 1 second");
        }
        for (key, value) in [
            ("twitch.helix_url", &t.helix_url),
            ("twitch.id_url", &t.id_url),
            ("twitch.gql_url", &t.gql_url),
            ("twitch.usher_url", &t.usher_url),
            ("twitch.redirect_uri", &t.redirect_uri),
            ("youtube.redirect_uri", &self.youtube.redirect_uri),
            ("youtube.auth_url", &self.youtube.auth_url),
            ("youtube.token_url", &self.youtube.token_url),
            ("youtube.upload_url", &self.youtube.upload_url),
            ("youtube.api_url", &self.youtube.api_url),
            ("slack.api_url", &self.slack.api_url),
            ("discord.api_url", &self.discord.api_url),
        ] {
            check_url(value).map_err(|m| (key.to_string(), m))?;
        }
        if t.client_id.is_some() != t.client_secret.is_some() {
            return fail(
                "twitch.client_secret",
                "client_id and client_secret go together (or leave both out to detect live \
                 streams without credentials)",
            );
        }
        if t.irc_host.trim().is_empty() {
            return fail("twitch.irc_host", "must not be empty");
        }
        if self.chat.login == ChatLogin::User && !t.irc_tls {
            return fail(
                "chat.login",
                "\"user\" sends the Twitch account's token to the chat server, which needs \
                 [twitch] irc_tls = true (or use login = \"anonymous\" over plain TCP)",
            );
        }
        let r = &self.recording;
        if !(r.max_part_hours.is_finite() && r.max_part_hours > 0.0) {
            return fail("recording.max_part_hours", "must be more than 0 hours");
        }
        if !r.file_template.contains("{login}") && !r.file_template.contains("{started") {
            return fail(
                "recording.file_template",
                "must contain {login} or {started:…} so recordings get distinct names",
            );
        }
        if let Err(e) = crate::archive::layout::validate_template(&r.file_template) {
            return Err(("recording.file_template".into(), e));
        }
        if r.stall_timeout_secs == 0 {
            return fail("recording.stall_timeout_secs", "must be at least 1 second");
        }
        if !(1..=3600).contains(&r.sync_interval_secs) {
            return fail(
                "recording.sync_interval_secs",
                "must be between 1 and 3600 seconds",
            );
        }
        if s.disk_check_secs == 0 {
            return fail("storage.disk_check_secs", "must be at least 1 second");
        }
        if s.disk_report_secs > 3600 {
            return fail(
                "storage.disk_report_secs",
                "must be at most 3600 seconds (an hour-old `disk` answer is stale)",
            );
        }
        if !(r.max_segment_mbps.is_finite() && r.max_segment_mbps > 0.0) {
            return fail("recording.max_segment_mbps", "must be more than 0 Mbit/s");
        }
        if r.max_segment_mb == 0 {
            return fail("recording.max_segment_mb", "must be at least 1 MiB");
        }
        if !(r.segment_time_factor.is_finite() && r.segment_time_factor >= 1.0) {
            return fail(
                "recording.segment_time_factor",
                "must be at least 1 (a segment needs its own duration to arrive live)",
            );
        }
        if !(r.segment_min_secs.is_finite()
            && r.segment_min_secs > 0.0
            && r.segment_min_secs <= 3600.0)
        {
            return fail(
                "recording.segment_min_secs",
                "must be more than 0 and at most 3600 seconds",
            );
        }
        self.chat.validate()?;
        let y = &self.youtube;
        if y.enabled && (y.client_id.is_none() || y.client_secret.is_none()) {
            return fail(
                "youtube.enabled",
                "uploads need [youtube] client_id and client_secret (a Google \"Desktop app\" \
                 OAuth client)",
            );
        }
        if y.daily_upload_limit == 0 {
            return fail("youtube.daily_upload_limit", "must be at least 1");
        }
        if !(y.processing_check_secs.is_finite()
            && (0.01..=3600.0).contains(&y.processing_check_secs))
        {
            return fail(
                "youtube.processing_check_secs",
                "must be between 0.01 and 3600 seconds",
            );
        }
        if !(y.processing_timeout_hours.is_finite()
            && (0.0..=720.0).contains(&y.processing_timeout_hours)
            && y.processing_timeout_hours > 0.0)
        {
            return fail(
                "youtube.processing_timeout_hours",
                "must be more than 0 and at most 720 hours",
            );
        }
        if y.title_template.trim().is_empty() {
            return fail("youtube.title_template", "must not be empty");
        }
        if let Err(e) = crate::title_template::check_template(&y.title_template) {
            return Err(("youtube.title_template".into(), e));
        }
        if !(1..=1024).contains(&y.chunk_size_mib) {
            return fail(
                "youtube.chunk_size_mib",
                "must be between 1 and 1024 (MiB; Google wants multiples of 256 KiB)",
            );
        }
        for (key, value) in [
            ("youtube.chunk_timeout_secs", y.chunk_timeout_secs),
            ("youtube.upload_limit_wait_hours", y.upload_limit_wait_hours),
            ("youtube.retry_initial_ms", y.retry_initial_ms),
            ("youtube.retry_max_secs", y.retry_max_secs),
            ("youtube.retry_wait_minutes", y.retry_wait_minutes),
            ("youtube.retry_limit", u64::from(y.retry_limit)),
            ("youtube.max_attempts", u64::from(y.max_attempts)),
        ] {
            if value == 0 {
                return fail(key, "must be at least 1");
            }
        }
        if y.retry_limit > 100 || y.max_attempts > 1000 {
            return fail(
                if y.retry_limit > 100 {
                    "youtube.retry_limit"
                } else {
                    "youtube.max_attempts"
                },
                "retries must stay bounded (retry_limit at most 100, max_attempts at most 1000)",
            );
        }
        for (key, minutes) in [
            ("youtube.pending_auth_minutes", y.pending_auth_minutes),
            ("twitch.pending_auth_minutes", t.pending_auth_minutes),
        ] {
            if !(minutes.is_finite() && minutes > 0.0 && minutes <= 60.0) {
                return fail(
                    key,
                    "must be more than 0 and at most 60 minutes (authorization codes are \
                     short-lived)",
                );
            }
        }
        if !(1..=3600).contains(&t.validate_interval_secs) {
            return fail(
                "twitch.validate_interval_secs",
                "must be between 1 and 3600 (Twitch requires validating tokens at least hourly)",
            );
        }
        if t.scopes.is_empty()
            || t.scopes.iter().any(|s| {
                s.is_empty()
                    || !s
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ":_.-".contains(c))
            })
        {
            return fail(
                "twitch.scopes",
                "must be a list of Twitch scopes such as [\"chat:read\"]",
            );
        }
        let sl = &self.slack;
        if sl.app_token.is_some() && sl.bot_token.is_none() {
            return fail(
                "slack.bot_token",
                "Slack needs a bot token (xoxb-…) to post",
            );
        }
        if sl.bot_token.is_some() {
            if sl.listen.is_none() && sl.app_token.is_none() {
                return fail(
                    "slack.app_token",
                    "Socket Mode needs an app token (xapp-…); or set listen + signing_secret \
                     for HTTP mode",
                );
            }
            if sl.listen.is_some() && sl.signing_secret.is_none() {
                return fail(
                    "slack.signing_secret",
                    "HTTP mode (listen) needs the app's signing secret",
                );
            }
        }
        if !sl.command.starts_with('/') || sl.command.len() < 2 || sl.command.contains(' ') {
            return fail("slack.command", "must be a slash command such as /rec");
        }
        if let Some(guild) = &self.discord.guild_id {
            if guild.parse::<u64>().is_err() {
                return fail("discord.guild_id", "must be a numeric Discord id");
            }
        }
        for (key, ids) in [
            ("discord.operators", &self.discord.operators),
            ("discord.operator_roles", &self.discord.operator_roles),
        ] {
            if ids.iter().any(|id| id.parse::<u64>().is_err()) {
                return fail(key, "must be a list of numeric Discord ids");
            }
        }
        Ok(())
    }
}

fn check_url(value: &str) -> Result<(), String> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        Ok(_) => Err(format!("`{value}` must be an http(s) address")),
        Err(e) => Err(format!("`{value}` is not a valid address: {e}")),
    }
}

/// Why a config was refused: file, line when known, key when known, and what is wrong.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ", key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Deserializes, reporting the dotted key path of the first error (for an unknown key, the
/// path ends with that key).
fn deserialize(table: &toml::Table) -> Result<Config, (String, String)> {
    let value = toml::Value::Table(table.clone());
    serde_path_to_error::deserialize(value)
        .map_err(|e| (e.path().to_string(), e.inner().message().to_string()))
}

/// The line of the first error when the file text is deserialized on its own (spans survive
/// only this way).
fn file_error_line(text: &str) -> Option<usize> {
    let de = toml::Deserializer::new(text);
    match serde_path_to_error::deserialize::<_, Config>(de) {
        Ok(_) => None,
        Err(e) => e.inner().span().map(|s| line_of(text, s.start)),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Finds the line of `section.key` in the text (for errors found after deserialization).
fn locate(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = dotted.split_once('.')?;
    let mut in_section = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_section = trimmed.trim_matches(['[', ']']).trim() == section;
            if in_section && key.is_empty() {
                return Some(i + 1);
            }
            continue;
        }
        if in_section {
            if let Some((k, _)) = trimmed.split_once('=') {
                if k.trim() == key {
                    return Some(i + 1);
                }
            }
        }
    }
    None
}

/// Applies `RECBOT_<SECTION>__<KEY>` variables to the table. Returns which dotted key came from
/// which variable. Values are read as TOML when they parse as a number, bool or array, and as
/// strings otherwise (a string-typed key accepts numbers too, see `lenient_string`).
fn apply_env(
    table: &mut toml::Table,
    env: &[(String, String)],
) -> Result<BTreeMap<String, String>, (String, String)> {
    let mut applied = BTreeMap::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        if section.is_empty() || key.is_empty() || key.contains("__") {
            return Err((
                var.clone(),
                "environment overrides look like RECBOT_<SECTION>__<KEY>".into(),
            ));
        }
        let value = env_value(raw);
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = entry.as_table_mut() else {
            return Err((var.clone(), format!("`{section}` is not a section")));
        };
        section_table.insert(key.clone(), value);
        applied.insert(format!("{section}.{key}"), var.clone());
    }
    Ok(applied)
}

fn env_value(raw: &str) -> toml::Value {
    let trimmed = raw.trim();
    let parsed = format!("v = {trimmed}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"));
    // Only take a typed reading that is exactly what was written: `0x1F`, `1_000` or `12#x`
    // are strings (a secret or an id), not numbers.
    match parsed {
        Some(toml::Value::Integer(i)) if i.to_string() == trimmed => toml::Value::Integer(i),
        Some(toml::Value::Float(f)) if f.to_string() == trimmed => toml::Value::Float(f),
        Some(toml::Value::Boolean(b)) if b.to_string() == trimmed => toml::Value::Boolean(b),
        Some(v @ toml::Value::Array(_)) if trimmed.starts_with('[') => v,
        Some(v @ toml::Value::String(_)) if trimmed.starts_with(['"', '\'']) => v,
        _ => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests;

/// For tests: every outside endpoint the given config text does not set is pointed at a closed
/// local port, so a test can never reach the internet (a worker it did not mean to exercise
/// just fails to connect). HLS sources may be local (`allow_private_sources`) unless the text
/// says otherwise. The disk limits are also set out of reach unless the text sets them:
/// the machine running the tests may well be 85% full, and a `DiskLow` notice nobody asked for
/// would change what a test sees.
#[doc(hidden)]
pub mod testing {
    /// Closed port on the loopback interface (the discard service is never running).
    const NOWHERE: &str = "http://127.0.0.1:9";

    pub fn offline(text: &str) -> String {
        let mut table: toml::Table = text.parse().expect("test config is valid TOML");
        let defaults: [(&str, &str, toml::Value); 16] = [
            // The tests' HLS origins are local servers.
            ("recording", "allow_private_sources", true.into()),
            ("storage", "warn_usage_percent", toml::Value::Integer(100)),
            ("storage", "min_free_gb", toml::Value::Float(0.0)),
            ("twitch", "helix_url", format!("{NOWHERE}/helix").into()),
            ("twitch", "id_url", format!("{NOWHERE}/oauth2").into()),
            ("twitch", "gql_url", format!("{NOWHERE}/gql").into()),
            ("twitch", "usher_url", NOWHERE.into()),
            ("twitch", "irc_host", "127.0.0.1".into()),
            ("twitch", "irc_port", toml::Value::Integer(9)),
            ("twitch", "irc_tls", false.into()),
            ("youtube", "auth_url", format!("{NOWHERE}/auth").into()),
            ("youtube", "token_url", format!("{NOWHERE}/token").into()),
            ("youtube", "upload_url", format!("{NOWHERE}/upload").into()),
            ("youtube", "api_url", format!("{NOWHERE}/youtube/v3").into()),
            ("slack", "api_url", format!("{NOWHERE}/api").into()),
            ("discord", "api_url", NOWHERE.into()),
        ];
        for (section, key, value) in defaults {
            let section = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(section) = section.as_table_mut() {
                section.entry(key).or_insert(value);
            }
        }
        toml::to_string(&table).expect("a TOML table serializes")
    }
}
