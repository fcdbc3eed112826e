//! `[chat]`: the Twitch chat logger's login, connections, Twitch's limits, the log writer and
//! the chat replay subtitles written beside each part's chat file, and the chat stream on
//! NATS JetStream (`stream_*`).

use serde::Deserialize;

use super::Twitch;
use crate::secret::Secret;

/// `[chat] stream_name` when unset.
pub const DEFAULT_STREAM_NAME: &str = "RECBOT_CHAT";
/// `[chat] stream_spool_bytes` when unset: 256 MiB.
pub const DEFAULT_STREAM_SPOOL_BYTES: u64 = 256 * 1024 * 1024;
/// The smallest spool accepted: a few hundred chat lines.
pub const MIN_STREAM_SPOOL_BYTES: u64 = 64 * 1024;

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

/// How chat day files are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatCompression {
    /// `DD.jsonl.zst`: zstd frames, about a tenth of the size.
    Zstd,
    /// `DD.jsonl`: plain JSON lines.
    None,
}

/// zstd levels `[chat] zstd_level` accepts (above 19 needs far more memory and time).
pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=19;

/// A subtitle format of the chat replay (`[chat] subtitles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubtitleFormat {
    /// Advanced SubStation Alpha (`<name>.chat.ass`): colours and placement in mpv and VLC.
    Ass,
    /// WebVTT (`<name>.chat.vtt`): browsers and most players.
    Vtt,
}

impl SubtitleFormat {
    pub const ALL: [SubtitleFormat; 2] = [SubtitleFormat::Ass, SubtitleFormat::Vtt];

    /// The config word, also the file's extension.
    pub fn as_str(self) -> &'static str {
        match self {
            SubtitleFormat::Ass => "ass",
            SubtitleFormat::Vtt => "vtt",
        }
    }

    pub fn parse(word: &str) -> Option<SubtitleFormat> {
        SubtitleFormat::ALL.into_iter().find(|f| f.as_str() == word)
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
    /// Day files as zstd frames (`DD.jsonl.zst`, the default) or plain (`DD.jsonl`).
    pub compression: ChatCompression,
    /// zstd level for the day files (1–19; 1, the fastest, is within 3 % of 3's size on chat lines).
    pub zstd_level: i32,
    /// Day files kept open at once (the least recently used are closed first); 0: one per
    /// logged room, within the process's open-file limit.
    pub max_open_files: usize,
    /// How long a finished part's upload waits for its chat file before it goes without it.
    pub save_timeout_secs: f64,
    /// Chat replay subtitles written beside each part's chat file: `"ass"`, `"vtt"`; empty:
    /// none. Kept as words so an unknown one is refused naming this key.
    pub subtitles: Vec<String>,
    /// How long each chat line shows in the replay.
    pub subtitle_secs: f64,
    /// Most chat lines shown at once (the oldest leave the stack first).
    pub subtitle_lines: usize,
    /// The chat stream: every logged line also published to NATS JetStream at this address
    /// (`nats://host:4222`, `tls://host:4222`); unset: no stream.
    pub stream_url: Option<String>,
    /// The JetStream stream (created with subjects `recbot.chat.>` when missing).
    pub stream_name: String,
    /// NATS credentials: user and password, or a token (or none).
    pub stream_user: Option<String>,
    pub stream_password: Option<Secret>,
    pub stream_token: Option<Secret>,
    /// Most bytes the spool under `data_dir` holds while NATS cannot be reached; lines beyond
    /// it are left out of the stream (counted, reported; the day files keep them).
    pub stream_spool_bytes: u64,
    /// How long a connection attempt, a JetStream request or a batch's acknowledgements may
    /// take before NATS counts as unreachable.
    pub stream_timeout_secs: f64,
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
            compression: ChatCompression::Zstd,
            zstd_level: 1,
            max_open_files: 0,
            save_timeout_secs: 300.0,
            subtitles: vec!["ass".into()],
            subtitle_secs: 5.0,
            subtitle_lines: 8,
            stream_url: None,
            stream_name: DEFAULT_STREAM_NAME.into(),
            stream_user: None,
            stream_password: None,
            stream_token: None,
            stream_spool_bytes: DEFAULT_STREAM_SPOOL_BYTES,
            stream_timeout_secs: 5.0,
        }
    }
}

impl Chat {
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
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
        if !ZSTD_LEVELS.contains(&self.zstd_level) {
            return fail("zstd_level", "must be between 1 and 19");
        }
        if (1..4).contains(&self.max_open_files) {
            return fail(
                "max_open_files",
                "must be 0 (one per room, the default) or at least 4",
            );
        }
        self.validate_subtitles()?;
        self.validate_stream()
    }

    fn validate_stream(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, msg: &str| Err((format!("chat.{key}"), msg.to_string()));
        if let Some(url) = &self.stream_url {
            if let Err(why) = stream_address(url) {
                return fail("stream_url", &why);
            }
        }
        let name_ok = !self.stream_name.is_empty()
            && self.stream_name.len() <= 64
            && self
                .stream_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return fail(
                "stream_name",
                "must be 1 to 64 letters, digits, `_` or `-` (a JetStream stream name)",
            );
        }
        if self.stream_user.is_some() != self.stream_password.is_some() {
            return fail(
                "stream_password",
                "stream_user and stream_password go together (set both or neither)",
            );
        }
        if self.stream_user.is_some() && self.stream_token.is_some() {
            return fail(
                "stream_token",
                "use either stream_token or stream_user/stream_password, not both",
            );
        }
        if self.stream_spool_bytes < MIN_STREAM_SPOOL_BYTES {
            return fail("stream_spool_bytes", "must be at least 65536 (64 KiB)");
        }
        let t = self.stream_timeout_secs;
        if !(t.is_finite() && (0.1..=300.0).contains(&t)) {
            return fail("stream_timeout_secs", "must be between 0.1 and 300 seconds");
        }
        Ok(())
    }

    fn validate_subtitles(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, msg: String| Err((format!("chat.{key}"), msg));
        for (i, word) in self.subtitles.iter().enumerate() {
            if SubtitleFormat::parse(word).is_none() {
                return fail(
                    "subtitles",
                    format!("`{word}` is not a subtitle format; use \"ass\" or \"vtt\" (or [] for none)"),
                );
            }
            if self.subtitles[..i].contains(word) {
                return fail("subtitles", format!("`{word}` is listed twice"));
            }
        }
        if !(self.subtitle_secs.is_finite() && (1.0..=60.0).contains(&self.subtitle_secs)) {
            return fail("subtitle_secs", "must be between 1 and 60 seconds".into());
        }
        if !(1..=50).contains(&self.subtitle_lines) {
            return fail("subtitle_lines", "must be between 1 and 50".into());
        }
        Ok(())
    }

    /// The chat replay formats asked for (validated: unknown words were refused at load).
    pub fn subtitle_formats(&self) -> Vec<SubtitleFormat> {
        self.subtitles
            .iter()
            .filter_map(|w| SubtitleFormat::parse(w))
            .collect()
    }
}

impl Chat {
    /// The `check-config` text on chat logging; the IRC address is `[twitch]`'s.
    pub(super) fn summary(&self, twitch: &Twitch) -> String {
        let on = |b: bool| if b { "on" } else { "off" };
        if self.enabled {
            let files = match self.compression {
                ChatCompression::Zstd => format!("day files zstd level {}", self.zstd_level),
                ChatCompression::None => "day files plain".to_string(),
            };
            format!(
                "{}:{} (TLS {}), login {}, {} rooms per connection, at most {} JOINs per {} s, {files}",
                twitch.irc_host,
                twitch.irc_port,
                on(twitch.irc_tls),
                self.login.as_str(),
                self.channels_per_connection,
                self.join_limit,
                self.join_window_secs
            )
        } else {
            "off".into()
        }
    }

    /// The `check-config` text on the chat stream (no credentials, only which kind is set).
    pub(super) fn stream_summary(&self) -> String {
        let Some(url) = &self.stream_url else {
            return "off (no stream_url)".into();
        };
        let shown = stream_address(url).unwrap_or_else(|_| url.clone());
        let auth = if self.stream_token.is_some() {
            ", token"
        } else if self.stream_user.is_some() {
            ", user and password"
        } else {
            ""
        };
        let off = if self.enabled {
            ""
        } else {
            " (chat logging is off: nothing to publish)"
        };
        format!(
            "NATS JetStream {shown}{auth}, stream {} (subjects recbot.chat.>), spool at most {} \
             MiB{off}",
            self.stream_name,
            self.stream_spool_bytes.div_ceil(1024 * 1024)
        )
    }

    /// The `check-config` text on the chat replay subtitles.
    pub(super) fn replay_summary(&self) -> String {
        let formats: Vec<&str> = self.subtitle_formats().iter().map(|f| f.as_str()).collect();
        if !self.enabled {
            "off (chat logging is off)".into()
        } else if formats.is_empty() {
            "off (subtitles = [])".into()
        } else {
            format!(
                "{} beside each part's chat file, each line {} s, at most {} at once",
                formats.join(" + "),
                self.subtitle_secs,
                self.subtitle_lines
            )
        }
    }
}

/// Checks a `[chat] stream_url` and gives it as shown: `nats://` or `tls://` (or a bare
/// `host:port`, which NATS clients read as `nats://`), a host, no credentials (they are
/// secrets of their own keys), no path.
pub fn stream_address(url: &str) -> Result<String, String> {
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("nats://{url}")
    };
    let parsed = url::Url::parse(&full).map_err(|e| format!("is not a NATS address: {e}"))?;
    if !matches!(parsed.scheme(), "nats" | "tls") {
        return Err(format!(
            "must start with nats:// or tls:// (not {}://)",
            parsed.scheme()
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "must not hold credentials: use stream_user/stream_password or stream_token".into(),
        );
    }
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Err("names no host (nats://host:4222)".into());
    };
    if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() || parsed.fragment().is_some()
    {
        return Err("must be only scheme, host and port (nats://host:4222)".into());
    }
    let port = parsed.port().unwrap_or(4222);
    Ok(format!("{}://{host}:{port}", parsed.scheme()))
}
